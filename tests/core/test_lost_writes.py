"""Writes survive a power cut with their folders; a record lost anyway is reported as corruption."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durably import workflow
from durably._errors import CheckpointCorruptedError
from durably._inspect import workflow_store
from durably.storage import FileStorage


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
    assert str(steps) in synced
    assert str(steps.parent) in synced  # the new folder "steps" itself is durable in its parent


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
