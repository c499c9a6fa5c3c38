"""How the store lays step outputs and objects out in bytes (read back exactly, written once)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from durably import _codec
from durably._objects import encode_object
from durably._store import WorkflowStore
from durably.storage import FileStorage


def _store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(FileStorage(tmp_path.as_uri()), "wf")


def test_an_array_output_is_copied_once_on_its_way_to_storage(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save_step_output("warm-up", 0, {})  # first-use imports must not count below
    array = np.arange(1_000_000, dtype=np.int64)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store.save_step_output("s", {"array": array}, {"name": "s"})
        extra = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # One copy is the record itself; pickling in-band would add a second.
    assert extra < 1.5 * array.nbytes


def test_an_array_output_loads_equal(tmp_path: Path) -> None:
    store = _store(tmp_path)
    array = np.arange(100_000, dtype=np.int64).reshape(1000, 100)
    store.save_step_output("s", {"array": array, "n": 1}, {"name": "s"})
    loaded = store.load_step_output("s")
    assert np.array_equal(loaded["array"], array) and loaded["n"] == 1


def test_an_output_without_buffers_is_a_plain_pickle(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save_step_output("s", {"n": 1}, {"name": "s"})
    _, meta, payload = _codec.decode_record("k", store.storage.get(store.key("steps", "s")))
    assert "buffers" not in meta
    assert _codec.loads(payload) == {"n": 1}


def test_an_object_written_with_the_old_kind_number_still_loads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    content_hash, parts = encode_object([1, 2, 3])
    old_kind = 8  # objects shared EVENT's number before RecordKind.OBJECT existed
    store.storage.put(store.object_key(content_hash), _codec.encode_record_from_parts(old_kind, {}, parts))
    assert store.load_object(content_hash) == [1, 2, 3]
