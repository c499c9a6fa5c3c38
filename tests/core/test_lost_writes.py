"""Writes survive a power cut with their folders; a record lost anyway is reported as corruption."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from durably import workflow
from durably._errors import CheckpointCorruptedError
from durably._inspect import workflow_store
from durably.storage import FileStorage
from durably.storage import _file as file_storage_module


@workflow.step
def answer() -> int:
    return 42


def _synced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


@pytest.mark.parametrize("operation", ["put", "put_if_absent"])
def test_a_file_write_fsyncs_the_folder_it_lands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    storage = FileStorage(str(tmp_path / "storage"))
    synced = _synced_paths(monkeypatch)
    getattr(storage, operation)("workflows/wf/steps/s", b"data")
    steps = tmp_path / "storage" / "workflows" / "wf" / "steps"
    # The folder the key was linked into, and those holding the new folders' names ("workflows",
    # "wf", "steps"), are fsynced behind the write, without anyone asking.
    wanted = {str(steps), str(steps.parent), str(steps.parent.parent), str(steps.parent.parent.parent)}
    deadline = time.monotonic() + 30
    while not wanted <= set(synced) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wanted <= set(synced)


@pytest.mark.parametrize("prefix", ["workflows/wf", "workflows/wf/steps/s"])
def test_sync_fsyncs_the_folders_under_a_prefix_and_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    # As if the background folder sync had not run (another process wrote the keys).
    monkeypatch.setattr(type(file_storage_module._FOLDERS), "schedule", lambda self, folder: None)
    storage = FileStorage(str(tmp_path / "storage"))
    storage.put_if_absent("workflows/wf/steps/s", b"data")
    storage.put_if_absent("workflows/other/steps/s", b"data")
    synced = _synced_paths(monkeypatch)
    storage.sync(prefix)
    root = tmp_path / "storage"
    steps = root / "workflows" / "wf" / "steps"
    assert {str(steps), str(steps.parent), str(root / "workflows"), str(root)} <= set(synced)
    assert str(root / "workflows" / "other" / "steps") not in synced  # not under the prefix


def test_the_result_is_recorded_only_once_the_output_steps_folder_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the background folder sync had not run yet: only the result's own barrier syncs.
    monkeypatch.setattr(type(file_storage_module._FOLDERS), "schedule", lambda self, folder: None)
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def recording_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def recording_link(source: str, target: Any, **kwargs: Any) -> None:
        real_link(source, target, **kwargs)
        folder_fd = kwargs.get("dst_dir_fd")  # an unnamed file is linked in relative to its folder
        folder = "" if folder_fd is None else os.readlink(f"/proc/self/fd/{folder_fd}") + "/"
        events.append(("link", folder + str(target)))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "link", recording_link)
    storage = tmp_path / "storage"
    workflow.init(storage=str(storage), executor="local")
    assert answer.step().run("durable") == 42
    steps = storage / "workflows" / "durable" / "steps"
    result = storage / "workflows" / "durable" / "result"
    linked_result = events.index(("link", str(result)))
    assert ("fsync", str(steps)) in events[:linked_result]
    assert ("fsync", str(result.parent)) in events[linked_result:]


def test_a_result_whose_step_output_is_missing_is_reported_as_corrupted(tmp_path: Path) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="local")
    assert answer.step().run("lost") == 42
    store = workflow_store("lost")
    step_id = store.result_step_id()
    assert step_id is not None
    store.storage.delete_prefix(store.key("steps", step_id))
    with pytest.raises(CheckpointCorruptedError) as raised:
        workflow.get_output("lost")
    assert raised.value.key == store.key("steps", step_id)
