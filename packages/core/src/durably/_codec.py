"""Framed, checksummed records: how every checkpoint is laid out in bytes.

A record is ``MAGIC | version | kind | meta length | payload length | crc32 | meta | payload``.
``meta`` is JSON (cheap to read without unpickling the payload), ``payload`` is cloudpickle.
``kind`` is a :class:`RecordKind`, the one list of what durably stores. A payload pickled with
out-of-band buffers (protocol 5: numpy arrays, bytearrays) is *framed*:
``main length | buffer count | main pickle | (buffer length | buffer)*``, so a large buffer is
copied once, into the record, never into an intermediate pickle.
A truncated or altered record raises :class:`CheckpointCorruptedError` naming its key, never
a silent wrong value.
"""

from __future__ import annotations

import enum
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
_FRAME = struct.Struct(">QI")
_BUFFER_LENGTH = struct.Struct(">Q")


@enum.unique
class RecordKind(enum.IntEnum):
    """What a record holds; a reader checks it, so a record under the wrong key is refused.

    ``unique``: two kinds can never share a number again (``EVENT`` and objects once did).
    """

    META = 1
    GRAPH = 2
    STATUS = 3
    STEP = 4
    CONTINUATION = 5
    POINTER = 6
    FUNCTION = 7
    EVENT = 8
    MESSAGE = 9
    #: The value of a Ray ObjectRef. Versions before this one wrote 8 (EVENT's number) here;
    #: objects are read without checking their kind (their key says what they are), so those
    #: records still load.
    OBJECT = 10
    #: The pickled exception of a failed run (its text is in the plain status record).
    FAILURE = 11
    #: A zip of a workflow's code folder (a code snapshot's ``working_dir`` or one of its ``py_modules``).
    CODE = 12
    ACTOR_CLASS = 20
    ACTOR_CALL = 21


def encode_record(kind: int, meta: dict[str, Any], payload: bytes = b"") -> bytes:
    """Frame ``meta`` (JSON-serialisable) and an already-pickled ``payload`` into one record."""
    meta_bytes = json.dumps(meta, separators=(",", ":"), default=str).encode()
    checksum = zlib.crc32(payload, zlib.crc32(meta_bytes))
    header = _HEADER.pack(MAGIC, VERSION, kind, len(meta_bytes), len(payload), checksum)
    return b"".join((header, meta_bytes, payload))


def encode_record_from_parts(kind: int, meta: dict[str, Any], parts: list[bytes | memoryview]) -> bytes:
    """Like :func:`encode_record` for a payload given in pieces (large buffers are copied once, by join)."""
    return b"".join(record_parts(kind, meta, parts))


def record_parts(
    kind: int, meta: dict[str, Any], parts: list[bytes | memoryview]
) -> list[bytes | memoryview]:
    """The pieces of a record whose payload is ``parts``, not joined (a codec may encode them unjoined)."""
    meta_bytes = json.dumps(meta, separators=(",", ":"), default=str).encode()
    checksum = zlib.crc32(meta_bytes)
    length = 0
    for part in parts:
        checksum = zlib.crc32(part, checksum)
        length += len(part)
    header = _HEADER.pack(MAGIC, VERSION, kind, len(meta_bytes), length, checksum)
    return [header, meta_bytes, *parts]


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

    def __init__(self, file: io.BytesIO, persistent: Any, buffer_callback: Any = None) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffer_callback)
        self._persistent = persistent

    def persistent_id(self, obj: Any) -> Any:
        return self._persistent(obj)


def dumps_with(value: Any, persistent: Any) -> bytes:
    """Pickle ``value``; ``persistent(obj)`` returns a persistent id for objects to replace, else None."""
    buffer = io.BytesIO()
    PersistentPickler(buffer, persistent).dump(value)
    return buffer.getvalue()


def dumps_framed(value: Any, persistent: Any = None) -> tuple[list[bytes | memoryview], int]:
    """Pickle ``value`` with out-of-band buffers: (payload pieces, number of buffers).

    With no buffer the one piece is the plain pickle (what :func:`dumps_with` writes); else the
    pieces are a framed payload whose buffers are views of the value's own memory, not copies.
    """
    buffers: list[pickle.PickleBuffer] = []
    file = io.BytesIO()
    pickler = PersistentPickler(file, persistent or (lambda obj: None), buffers.append)
    pickler.dump(value)
    main = file.getbuffer()
    if not buffers:
        return [main], 0
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    return frame(main, views), len(views)


def frame(main: bytes | memoryview, views: list[memoryview]) -> list[bytes | memoryview]:
    """The pieces of a framed payload: a main pickle and its out-of-band buffers (not copied)."""
    parts: list[bytes | memoryview] = [_FRAME.pack(len(main), len(views)), main]
    for view in views:
        parts += [_BUFFER_LENGTH.pack(len(view)), view]
    return parts


def unframe(payload: memoryview) -> tuple[memoryview, list[memoryview]]:
    """Split a framed payload into (main pickle, out-of-band buffers), without copying."""
    main_length, count = _FRAME.unpack_from(payload, 0)
    offset = _FRAME.size
    main = payload[offset : offset + main_length]
    offset += main_length
    buffers = []
    for _ in range(count):
        (length,) = _BUFFER_LENGTH.unpack_from(payload, offset)
        offset += _BUFFER_LENGTH.size
        buffers.append(payload[offset : offset + length])
        offset += length
    return main, buffers


class _PersistentUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Any, buffers: Any = None) -> None:
        super().__init__(file, buffers=buffers)
        self._resolve = resolve

    def persistent_load(self, pid: Any) -> Any:
        return self._resolve(pid)


def loads_with(data: bytes | memoryview, resolve: Any, buffers: Any = None) -> Any:
    """Unpickle what :func:`dumps_with` wrote; ``resolve(pid)`` returns the object for each persistent id.

    ``buffers`` are the out-of-band buffers of a framed payload (see :func:`unframe`).
    """
    return _PersistentUnpickler(io.BytesIO(data), resolve, buffers).load()
