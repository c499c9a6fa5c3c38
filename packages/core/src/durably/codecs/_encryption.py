"""The ``encrypt`` codec: AES-256-GCM in chunks, a random nonce prefix per record, key id in the header.

Layout: ``DRBE | version | key id | nonce prefix (8) | chunk size (4) | plain length (8) | chunks``;
chunk ``i`` is sealed with nonce ``prefix | i`` and authenticates the storage key, the header,
its index and whether it is the last one, so chunks cannot be reordered, dropped or moved to
another key. Chunking bounds the extra memory of a large record to one chunk beyond its
ciphertext and plaintext. Needs ``cryptography`` (``pip install 'durably[encryption]'``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from durably.codecs._base import RecordRefusedError, pack_prefix, unpack_prefix
from durably.codecs._keys import KeyRing, key_ring_from_environment
from durably.codecs._signing import LEGACY_HINT, allow_legacy_from_environment

MAGIC = b"DRBE"
VERSION = 1
ENCRYPTION_KEY_ENV = "DURABLY_ENCRYPTION_KEY"
CHUNK_SIZE = 1 << 20
_TAG = 16
_PARAMS = struct.Struct(">8sIQ")
_CHUNK_AAD = struct.Struct(">IB")


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ImportError(
            "the encrypt codec needs the cryptography package: pip install 'durably[encryption]'"
        ) from None
    return AESGCM


def _chunks(parts: Sequence[bytes | memoryview], size: int) -> Iterator[bytes | memoryview]:
    """``b"".join(parts)`` cut in ``size`` pieces: views where a piece lies in one part, else a small join."""
    pending: list[memoryview] = []
    pending_length = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view):
            take = min(size - pending_length, len(view))
            if not pending and take == size:
                yield view[:take]
            else:
                pending.append(view[:take])
                pending_length += take
                if pending_length == size:
                    yield b"".join(pending)
                    pending, pending_length = [], 0
            view = view[take:]
    if pending or (size and not any(len(part) for part in parts)):
        yield b"".join(pending)


class EncryptionCodec:
    """Encrypts with the first key of ``keys`` (32 bytes each) and decrypts with any of them (rotation)."""

    name = "encrypt"

    def __init__(self, keys: KeyRing, *, allow_legacy: bool = False, chunk_size: int = CHUNK_SIZE) -> None:
        aesgcm = _aesgcm()
        self.keys = keys
        self.allow_legacy = allow_legacy
        self.chunk_size = chunk_size
        self._ciphers = {key_id: aesgcm(secret) for key_id, secret in keys.keys.items()}

    @classmethod
    def from_environment(cls) -> EncryptionCodec:
        """Keys from ``DURABLY_ENCRYPTION_KEY`` (``id:base64 of 32 bytes,...``) or its ``_FILE``."""
        keys = key_ring_from_environment(ENCRYPTION_KEY_ENV, decode_base64=True, length=32)
        if keys is None:
            raise ValueError(
                f"the encrypt codec needs a key: set {ENCRYPTION_KEY_ENV}=id:<base64 of 32 random bytes> "
                "(several, comma-separated, to read with old keys while rotating) "
                f"or {ENCRYPTION_KEY_ENV}_FILE"
            )
        return cls(keys, allow_legacy=allow_legacy_from_environment())

    def encode(self, key: str, data: bytes) -> bytes:
        return self.encode_parts(key, [data])

    def encode_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> bytes:
        cipher = self._ciphers[self.keys.write_id]
        length = sum(len(part) for part in parts)
        nonce_prefix = os.urandom(8)
        header = pack_prefix(MAGIC, VERSION, self.keys.write_id) + _PARAMS.pack(
            nonce_prefix, self.chunk_size, length
        )
        bound = key.encode() + b"\0" + header
        count = max(1, -(-length // self.chunk_size))
        # Sealed chunks are written into one preallocated buffer: no joined record, no list of chunks.
        out = bytearray(len(header) + length + count * _TAG)
        out[: len(header)] = header
        position = len(header)
        for index, plain in enumerate(_chunks(parts, self.chunk_size)):
            aad = bound + _CHUNK_AAD.pack(index, index == count - 1)
            sealed = cipher.encrypt(nonce_prefix + index.to_bytes(4, "big"), plain, aad)
            out[position : position + len(sealed)] = sealed
            position += len(sealed)
        return out  # type: ignore[return-value]  # a bytearray: every backend writes it as bytes

    def decode(self, key: str, data: bytes) -> bytes:
        header_start = unpack_prefix(key, data, MAGIC)
        if header_start is None:
            if self.allow_legacy:
                return data
            raise RecordRefusedError(
                key,
                f"it is not encrypted while {ENCRYPTION_KEY_ENV} is set, so it may have been tampered with; "
                "durably refused it before unpickling anything. " + LEGACY_HINT,
            )
        version, key_id, end = header_start
        if version != VERSION:
            raise RecordRefusedError(key, f"encryption format {version} is not supported by this durably")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise RecordRefusedError(
                key,
                f"it is encrypted with key id {key_id!r}, which is not among the configured encryption keys "
                f"({', '.join(sorted(self._ciphers))}); add it to {ENCRYPTION_KEY_ENV} to read the record",
            )
        if len(data) < end + _PARAMS.size:
            raise RecordRefusedError(
                key, "its encryption header is truncated; it may have been tampered with"
            )
        nonce_prefix, chunk_size, length = _PARAMS.unpack_from(data, end)
        header_end = end + _PARAMS.size
        count = max(1, -(-length // chunk_size)) if chunk_size else 0
        if chunk_size == 0 or len(data) != header_end + length + count * _TAG:
            raise RecordRefusedError(
                key, "its length does not match its encryption header; it may have been tampered with"
            )
        bound = key.encode() + b"\0" + bytes(data[:header_end])
        view = memoryview(data)
        out = bytearray(length)
        position = header_end
        for index in range(count):
            size = min(chunk_size, length - index * chunk_size) + _TAG
            aad = bound + _CHUNK_AAD.pack(index, index == count - 1)
            try:
                plain = cipher.decrypt(
                    nonce_prefix + index.to_bytes(4, "big"), view[position : position + size], aad
                )
            except Exception:
                raise RecordRefusedError(
                    key,
                    f"it does not decrypt with encryption key {key_id!r}: "
                    "the record may have been tampered with "
                    "(or was written for another key); durably refused it before unpickling anything",
                ) from None
            out[index * chunk_size : index * chunk_size + len(plain)] = plain
            position += size
        return out  # type: ignore[return-value]  # a bytearray: readers take it as bytes
