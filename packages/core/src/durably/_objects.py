"""Ray ObjectRefs inside checkpoints: stored by value once per workflow, restored lazily.

An ObjectRef in a step's output (or argument) is replaced, while pickling, by the content hash
of its value; the value goes to ``workflows/<id>/objects/<hash>`` once, however many steps
share it. Large values are pickled out-of-band (protocol 5), so their bytes are copied once,
into the record, and never into an intermediate pickle. Loading a checkpoint gives back an
ObjectRef whose value a Ray task reads from storage, so nothing is fetched until it is used
(``_store.restore_object_ref``; the store owns the keys).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from typing import Any

import cloudpickle

from durably import _codec

OBJECT_ID = "objref"

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
    return digest.hexdigest(), _codec.frame(main, views)


def decode_object(payload: memoryview) -> Any:
    main, buffers = _codec.unframe(payload)
    return pickle.loads(main, buffers=buffers)


def save_object_ref(store: Any, ref: Any) -> str:
    """Store the value behind ``ref`` (once, under the key ``store.object_key`` names); return its hash."""
    import ray

    memo_key = (store.storage.url, store.workflow_id, ref.binary())
    known = _saved.get(memo_key)
    if known is not None:
        return known
    content_hash, parts = encode_object(ray.get(ref))
    key = store.object_key(content_hash)
    if not store.storage.exists(key):
        store.put_record_parts(key, _codec.RecordKind.OBJECT, {}, parts)
    with _saved_lock:
        _saved[memo_key] = content_hash
    return content_hash
