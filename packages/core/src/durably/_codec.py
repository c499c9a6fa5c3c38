"""Framed, checksummed records: how every checkpoint is laid out in bytes.

A record is ``MAGIC | version | kind | meta length | payload length | crc32 | meta | payload``.
``meta`` is JSON (cheap to read without unpickling the payload), ``payload`` is cloudpickle.
A truncated or altered record raises :class:`CheckpointCorruptedError` naming its key, never
a silent wrong value.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from typing import Any

import cloudpickle

from durably._errors import CheckpointCorruptedError

MAGIC = b"DRBL"
VERSION = 1
_HEADER = struct.Struct(">4sBBIQI")


def encode_record(kind: int, meta: dict[str, Any], payload: bytes = b"") -> bytes:
    """Frame ``meta`` (JSON-serialisable) and an already-pickled ``payload`` into one record."""
    meta_bytes = json.dumps(meta, separators=(",", ":"), default=str).encode()
    checksum = zlib.crc32(payload, zlib.crc32(meta_bytes))
    header = _HEADER.pack(MAGIC, VERSION, kind, len(meta_bytes), len(payload), checksum)
    return b"".join((header, meta_bytes, payload))


def encode_record_from_parts(kind: int, meta: dict[str, Any], parts: list[bytes | memoryview]) -> bytes:
    """Like :func:`encode_record` for a payload given in pieces (large buffers are copied once, by join)."""
    meta_bytes = json.dumps(meta, separators=(",", ":"), default=str).encode()
    checksum = zlib.crc32(meta_bytes)
    length = 0
    for part in parts:
        checksum = zlib.crc32(part, checksum)
        length += len(part)
    header = _HEADER.pack(MAGIC, VERSION, kind, len(meta_bytes), length, checksum)
    return b"".join([header, meta_bytes, *parts])


def decode_record(key: str, data: bytes) -> tuple[int, dict[str, Any], memoryview]:
    """Check and split a record; returns (kind, meta, payload view)."""
    if len(data) < _HEADER.size:
        raise CheckpointCorruptedError(key, f"{len(data)} bytes is shorter than a record header")
    magic, version, kind, meta_len, payload_len, checksum = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointCorruptedError(key, "it does not start with a durably record header")
    if version != VERSION:
        raise CheckpointCorruptedError(key, f"record version {version} is not supported by this durably")
    expected = _HEADER.size + meta_len + payload_len
    if len(data) != expected:
        raise CheckpointCorruptedError(key, f"expected {expected} bytes, found {len(data)} (truncated?)")
    view = memoryview(data)
    meta_bytes = view[_HEADER.size : _HEADER.size + meta_len]
    payload = view[_HEADER.size + meta_len :]
    if zlib.crc32(payload, zlib.crc32(meta_bytes)) != checksum:
        raise CheckpointCorruptedError(key, "checksum mismatch")
    return kind, json.loads(bytes(meta_bytes)), payload


def dumps(value: Any) -> bytes:
    """Pickle a value with cloudpickle (functions, lambdas and closures included)."""
    data: bytes = cloudpickle.dumps(value, protocol=5)
    return data


def loads(data: bytes | memoryview) -> Any:
    return cloudpickle.loads(data)


def pickle_error_hint(value: Any) -> str:
    """Why ``value`` cannot be pickled, for error messages."""
    try:
        cloudpickle.dumps(value)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "it pickles fine on its own"


class PersistentPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """A cloudpickle Pickler that lets a callback replace selected objects by persistent ids."""

    def __init__(self, file: io.BytesIO, persistent: Any) -> None:
        super().__init__(file, protocol=5)
        self._persistent = persistent

    def persistent_id(self, obj: Any) -> Any:
        return self._persistent(obj)


def dumps_with(value: Any, persistent: Any) -> bytes:
    """Pickle ``value``; ``persistent(obj)`` returns a persistent id for objects to replace, else None."""
    buffer = io.BytesIO()
    PersistentPickler(buffer, persistent).dump(value)
    return buffer.getvalue()


class _PersistentUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Any) -> None:
        super().__init__(file)
        self._resolve = resolve

    def persistent_load(self, pid: Any) -> Any:
        return self._resolve(pid)


def loads_with(data: bytes | memoryview, resolve: Any) -> Any:
    """Unpickle what :func:`dumps_with` wrote; ``resolve(pid)`` returns the object for each persistent id."""
    return _PersistentUnpickler(io.BytesIO(data), resolve).load()
