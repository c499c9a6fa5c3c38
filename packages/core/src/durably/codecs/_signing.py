"""The ``sign`` codec: HMAC-SHA256 over the whole record and its key, checked before anything is unpickled."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from durably.codecs._base import CodecStorage, RecordRefusedError, pack_prefix, unpack_prefix
from durably.codecs._keys import KeyRing, key_ring_from_environment
from durably.storage import Storage

MAGIC = b"DRBS"
VERSION = 1
SIGNING_KEY_ENV = "DURABLY_SIGNING_KEY"
LEGACY_ENV = "DURABLY_ALLOW_UNSIGNED_LEGACY"
_MAC_SIZE = hashlib.sha256().digest_size

LEGACY_HINT = (
    "If the store was written before codecs were configured, read it with allow_unsigned_legacy=True "
    f"({LEGACY_ENV}=1) and re-encode it with `durably codecs rewrite --storage URL`."
)


def allow_legacy_from_environment() -> bool:
    return os.environ.get(LEGACY_ENV, "").strip().lower() in ("1", "true", "yes")


class SigningCodec:
    """Signs records with the first key of ``keys`` and accepts any of them when reading (rotation).

    The storage key is signed too, so a record copied to another key (another step, another
    workflow) is refused like an altered one.
    """

    name = "sign"

    def __init__(self, keys: KeyRing, *, allow_legacy: bool = False) -> None:
        self.keys = keys
        self.allow_legacy = allow_legacy

    @classmethod
    def from_environment(cls) -> SigningCodec:
        """Keys from ``DURABLY_SIGNING_KEY`` (``id:secret,...``) or the file its ``_FILE`` names."""
        keys = key_ring_from_environment(SIGNING_KEY_ENV)
        if keys is None:
            raise ValueError(
                f"the sign codec needs a key: set {SIGNING_KEY_ENV}=id:secret (several, comma-separated, "
                f"to accept old keys while rotating) or {SIGNING_KEY_ENV}_FILE=/path/to/keys"
            )
        return cls(keys, allow_legacy=allow_legacy_from_environment())

    @staticmethod
    def _mac(
        secret: bytes, key: str, prefix: bytes | memoryview, body: Sequence[bytes | memoryview]
    ) -> bytes:
        mac = hmac.new(secret, key.encode() + b"\0", hashlib.sha256)
        mac.update(prefix)
        for part in body:
            mac.update(part)  # views of the record: hashed where they are, not copied
        return mac.digest()

    def encode(self, key: str, data: bytes) -> bytes:
        return self.encode_parts(key, [data])

    def encode_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> bytes:
        prefix = pack_prefix(MAGIC, VERSION, self.keys.write_id)
        mac = self._mac(self.keys.keys[self.keys.write_id], key, prefix, parts)
        return b"".join([prefix, mac, *parts])

    def decode(self, key: str, data: bytes) -> bytes:
        header = unpack_prefix(key, data, MAGIC)
        if header is None:
            if self.allow_legacy:
                return data
            raise RecordRefusedError(
                key,
                f"it carries no signature while {SIGNING_KEY_ENV} is set, so it may have been tampered with; "
                "durably refused it before unpickling anything. " + LEGACY_HINT,
            )
        version, key_id, end = header
        if version != VERSION:
            raise RecordRefusedError(key, f"signature format {version} is not supported by this durably")
        secret = self.keys.key(key_id)
        if secret is None:
            raise RecordRefusedError(
                key,
                f"it is signed with key id {key_id!r}, which is not among the configured signing keys "
                f"({', '.join(sorted(self.keys.keys))}); add that key to {SIGNING_KEY_ENV} to read it, "
                "or the record may have been tampered with",
            )
        view = memoryview(data)
        if len(view) < end + _MAC_SIZE:
            raise RecordRefusedError(
                key, f"its signature (key id {key_id!r}) is truncated; it may have been tampered with"
            )
        stored = view[end : end + _MAC_SIZE]
        body = view[end + _MAC_SIZE :]
        if not hmac.compare_digest(self._mac(secret, key, view[:end], [body]), stored):
            raise RecordRefusedError(
                key,
                f"its signature does not match signing key {key_id!r}: "
                "the record may have been tampered with "
                "(or was written for another key); durably refused it before unpickling anything",
            )
        return data[end + _MAC_SIZE :]


def checks_signatures(storage: Storage) -> bool:
    """Whether every record read from ``storage`` has its signature checked before it is unpickled.

    True when the storage runs its records through a ``sign`` codec that refuses unsigned ones
    (not in the ``allow_unsigned_legacy`` window): a record forged or altered by someone with write
    access to the storage, but not the key, is then refused instead of unpickled.
    """
    return isinstance(storage, CodecStorage) and any(
        isinstance(codec, SigningCodec) and not codec.allow_legacy for codec in storage.codecs
    )
