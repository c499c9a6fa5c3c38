"""The codec protocol, its errors, and the Storage wrapper that runs every record through codecs."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from durably._errors import CheckpointCorruptedError
from durably.storage import Storage

#: A codec record starts with ``MAGIC (4 bytes) | version (1) | key id length (1) | key id``.
_PREFIX = struct.Struct(">4sBB")


class RecordRefusedError(CheckpointCorruptedError):
    """A codec refused a record (bad signature, failed decryption, no codec header); nothing was unpickled."""

    def __init__(self, key: str, reason: str) -> None:
        self.reason = reason
        super().__init__(key, reason)


@runtime_checkable
class Codec(Protocol):
    """Turns a stored record into other bytes and back; built in every process from its configuration.

    ``encode`` and ``decode`` get the storage key so a codec can bind a record to where it is
    stored (a record copied to another key is then refused). ``decode`` must refuse, by raising
    :class:`RecordRefusedError`, anything it did not encode itself, unless ``allow_legacy`` is
    set, in which case bytes without its header are returned unchanged.
    """

    #: The name the codec is registered under (``sign``, ``encrypt``, a plugin's).
    name: str

    def encode(self, key: str, data: bytes) -> bytes:
        """The bytes to store for ``data`` at ``key``."""

    def decode(self, key: str, data: bytes) -> bytes:
        """The record stored as ``data`` at ``key``; raises :class:`RecordRefusedError` if refused."""


#: A codec may also define ``encode_parts(key, parts) -> bytes``, the same as ``encode(key,
#: b"".join(parts))`` without that join: a large record is then never joined before encoding.


def pack_prefix(magic: bytes, version: int, key_id: str) -> bytes:
    """The header start shared by the built-in codecs: magic, version, key id."""
    encoded = key_id.encode()
    return _PREFIX.pack(magic, version, len(encoded)) + encoded


def unpack_prefix(key: str, data: bytes | memoryview, magic: bytes) -> tuple[int, str, int] | None:
    """(version, key id, header length) of a record starting with ``magic``, else None."""
    if len(data) < _PREFIX.size or bytes(data[:4]) != magic:
        return None
    _, version, id_length = _PREFIX.unpack_from(data)
    end = _PREFIX.size + id_length
    if len(data) < end:
        raise RecordRefusedError(key, "its codec header is truncated; it may have been tampered with")
    return version, bytes(data[_PREFIX.size : end]).decode(errors="replace"), end


class CodecStorage:
    """A Storage whose values pass through ``codecs`` (in order on writes, reversed on reads).

    Listing, existence and deletion are the inner storage's: codecs change values, never keys.
    """

    def __init__(self, inner: Storage, codecs: Sequence[Codec]) -> None:
        self.inner = inner
        self.codecs = tuple(codecs)
        self.url = inner.url

    def _encode(self, key: str, data: bytes) -> bytes:
        for codec in self.codecs:
            data = codec.encode(key, data)
        return data

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, self._encode(key, data))

    def _encode_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> bytes:
        encode_parts = getattr(self.codecs[0], "encode_parts", None) if self.codecs else None
        if encode_parts is None:
            return self._encode(key, b"".join(parts))
        data: bytes = encode_parts(key, parts)
        for codec in self.codecs[1:]:
            data = codec.encode(key, data)
        return data

    def put_parts(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        """Store the record made of ``parts``; a first codec with ``encode_parts`` consumes them unjoined."""
        self.inner.put(key, self._encode_parts(key, parts))

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        """``put_parts`` creating the key only if it is absent (False when it existed: nothing written)."""
        return self.inner.put_if_absent(key, self._encode_parts(key, parts))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, self._encode(key, data))

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        for codec in reversed(self.codecs):
            data = codec.decode(key, data)
        return data

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def sync(self, prefix: str) -> None:
        """The inner backend's ``sync`` (durable keys under ``prefix``), when it has one."""
        sync = getattr(self.inner, "sync", None)
        if sync is not None:
            sync(prefix)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def __repr__(self) -> str:
        return f"CodecStorage({self.inner!r}, codecs={[codec.name for codec in self.codecs]})"
