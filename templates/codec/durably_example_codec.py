"""A template codec plugin: HMAC-SHA512 signing with keys from its own environment variable.

Copy this module into your package, rename the codec, and register it with an entry point in the
``durably`` group (``[project.entry-points.durably] example-codec = "your_package.codec"``).
Its tests subclass :class:`durably.testing.CodecContract` (see ``tests/core/test_codecs.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping

from durably import hookimpl
from durably.codecs import Codec, KeyRing, RecordRefusedError, parse_key_ring

MAGIC = b"XSIG"
KEYS_ENV = "EXAMPLE_CODEC_KEYS"


class ExampleCodec:
    """``MAGIC | key id length | key id | HMAC-SHA512(storage key, key id, data) | data``."""

    name = "example-sha512"

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def _mac(self, key_id: str, key: str, data: bytes | memoryview) -> bytes:
        mac = hmac.new(self.keys.keys[key_id], f"{key}\0{key_id}\0".encode(), hashlib.sha512)
        mac.update(data)
        return mac.digest()

    def encode(self, key: str, data: bytes) -> bytes:
        key_id = self.keys.write_id
        return b"".join((MAGIC, bytes([len(key_id)]), key_id.encode(), self._mac(key_id, key, data), data))

    def decode(self, key: str, data: bytes) -> bytes:
        if data[:4] != MAGIC or len(data) < 5:
            raise RecordRefusedError(
                key, "it is not signed by the example codec; it may have been tampered with"
            )
        end = 5 + data[4]
        key_id = data[5:end].decode(errors="replace")
        if key_id not in self.keys.keys:
            raise RecordRefusedError(
                key, f"it is signed with unknown key {key_id!r}; it may have been tampered with"
            )
        mac, body = data[end : end + 64], memoryview(data)[end + 64 :]
        if len(mac) != 64 or not hmac.compare_digest(mac, self._mac(key_id, key, body)):
            raise RecordRefusedError(
                key, f"its signature does not match key {key_id!r}; it may have been tampered with"
            )
        return bytes(body)


def _from_environment() -> Codec:
    return ExampleCodec(parse_key_ring(os.environ.get(KEYS_ENV, ""), KEYS_ENV))


@hookimpl
def durably_codecs() -> Mapping[str, Callable[[], Codec]]:
    return {ExampleCodec.name: _from_environment}
