"""Ray ObjectRefs inside checkpoints: stored by value once per workflow, restored lazily.

An ObjectRef in a step's output (or argument) is replaced, while pickling, by the content hash
of its value; the value goes to ``workflows/<id>/objects/<hash>`` once, however many steps
share it. Large values are pickled out-of-band (protocol 5), so their bytes are copied once,
into the record, and never into an intermediate pickle. Loading a checkpoint gives back an
ObjectRef whose value a Ray task reads from storage, so nothing is fetched until it is used.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
import threading
from typing import Any

import cloudpickle

from durably import _codec

OBJECT_ID = "objref"
_PARTS = struct.Struct(">QI")

_saved: dict[tuple[str, str, bytes], str] = {}
_saved_lock = threading.Lock()


def is_object_ref(value: Any) -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency of core
        return False
    return isinstance(value, ray.ObjectRef)


def encode_object(value: Any) -> tuple[str, list[bytes | memoryview]]:
    """(content hash, payload pieces) of a value; large buffers stay views, not copies."""
    buffers: list[pickle.PickleBuffer] = []
    main = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    digest = hashlib.blake2b(digest_size=20)
    digest.update(main)
    for view in views:
        digest.update(view)
    parts: list[bytes | memoryview] = [_PARTS.pack(len(main), len(views)), main]
    for view in views:
        parts += [struct.pack(">Q", len(view)), view]
    return digest.hexdigest(), parts


def decode_object(payload: memoryview) -> Any:
    main_length, count = _PARTS.unpack_from(payload, 0)
    offset = _PARTS.size
    main = payload[offset : offset + main_length]
    offset += main_length
    buffers = []
    for _ in range(count):
        (length,) = struct.unpack_from(">Q", payload, offset)
        offset += 8
        buffers.append(payload[offset : offset + length])
        offset += length
    return pickle.loads(main, buffers=buffers)


def save_object_ref(store: Any, ref: Any) -> str:
    """Store the value behind ``ref`` (once) and return its content hash."""
    import ray

    memo_key = (store.storage.url, store.workflow_id, ref.binary())
    known = _saved.get(memo_key)
    if known is not None:
        return known
    content_hash, parts = encode_object(ray.get(ref))
    key = store.key("objects", content_hash)
    if not store.storage.exists(key):
        store.storage.put(key, _codec.encode_record_from_parts(KIND_OBJECT, {}, parts))
    with _saved_lock:
        _saved[memo_key] = content_hash
    return content_hash


KIND_OBJECT = 8


def load_object(storage_url: str, workflow_id: str, content_hash: str) -> Any:
    """The value stored under a content hash (runs in a Ray worker for lazy restores)."""
    from durably._resolve import open_storage

    key = f"workflows/{workflow_id}/objects/{content_hash}"
    _, _, payload = _codec.decode_record(key, open_storage(storage_url).get(key))
    return decode_object(payload)


_restore_task: Any = None


def restore_object_ref(storage_url: str, workflow_id: str, content_hash: str) -> Any:
    """An ObjectRef whose value is read from storage by a Ray task; the value itself without Ray."""
    global _restore_task
    import ray

    if not ray.is_initialized():
        return load_object(storage_url, workflow_id, content_hash)
    if _restore_task is None:
        _restore_task = ray.remote(num_cpus=0)(load_object)
    return _restore_task.remote(storage_url, workflow_id, content_hash)
