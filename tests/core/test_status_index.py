"""The status index: `list --status` and counts by status stay true across every status change,
a crash in the middle of one, and storages written before the index existed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from durably_test_helpers import run_child

from durably import workflow
from durably._graph import flatten
from durably._resolve import open_storage
from durably._retention import collect_garbage
from durably._store import STATUS_HINTS, STATUS_INDEX_BUILT, WorkflowStore
from durably.cli import cli
from durably.inspect import Inspector
from durably.storage import Storage, StoragePermanentError

pytestmark = pytest.mark.workflow


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step(max_retries=0)
def gate(folder: str) -> int:
    if not Path(folder, "open").exists():
        raise RuntimeError("the gate is closed")
    return 2


@pytest.fixture
def local(storage_url: str) -> Inspector:
    workflow.init(storage=storage_url, executor="local")
    return Inspector(storage_url)


def _hints(storage_url: str) -> set[tuple[str, str]]:
    """Every (status, workflow id) hint in the storage."""
    start = len(STATUS_HINTS) + 1
    return {
        tuple(key[start:].split("/", 1))  # type: ignore[misc]
        for key in open_storage(storage_url).list(STATUS_HINTS)
    }


def _listed(inspector: Inspector, status: str) -> list[str]:
    return [item.workflow_id for item in inspector.list_workflows(status=[status]).items]


def _nonzero(inspector: Inspector) -> dict[str, int]:
    return {status: number for status, number in inspector.count_by_status().items() if number}


def _stored(storage: Storage, workflow_id: str) -> WorkflowStore:
    store = WorkflowStore(storage, workflow_id)
    store.create(flatten(add.step(1, 2)), {})
    return store


class FailingStorage:
    """A storage that refuses writes to keys starting with ``refused`` (as if its writer died there)."""

    def __init__(self, inner: Storage, refused: str, operation: str = "put") -> None:
        self.inner = inner
        self.url = inner.url
        self.refused = refused
        self.operation = operation

    def _check(self, operation: str, key: str) -> None:
        if operation == self.operation and key.startswith(self.refused):
            raise StoragePermanentError(f"refused {operation} of {key}")

    def put(self, key: str, data: bytes) -> None:
        self._check("put", key)
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._check("put", key)
        return self.inner.put_if_absent(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Any:
        return self.inner.list(prefix)

    def delete_prefix(self, prefix: str) -> int:
        self._check("delete", prefix)
        return self.inner.delete_prefix(prefix)


# -- kept true by every status change --------------------------------------------------------------
def test_a_finished_workflow_has_only_the_hint_of_its_final_status(
    local: Inspector, storage_url: str
) -> None:
    add.step(1, 2).run(workflow_id="done")
    assert _hints(storage_url) == {("SUCCESSFUL", "done")}
    assert _listed(local, "SUCCESSFUL") == ["done"]
    assert _listed(local, "RUNNING") == []
    assert _nonzero(local) == {"SUCCESSFUL": 1}


def test_a_failed_then_resumed_workflow_moves_from_failed_to_successful(
    local: Inspector, storage_url: str, tmp_path: Path
) -> None:
    with pytest.raises(workflow.WorkflowExecutionError):
        gate.step(str(tmp_path)).run(workflow_id="gated")
    assert _hints(storage_url) == {("FAILED", "gated")}
    assert _listed(local, "FAILED") == ["gated"]
    (tmp_path / "open").touch()
    assert workflow.resume("gated") == 2
    assert _hints(storage_url) == {("SUCCESSFUL", "gated")}
    assert _listed(local, "FAILED") == []
    assert _nonzero(local) == {"SUCCESSFUL": 1}


def test_a_resumed_failed_workflow_is_hinted_running_while_it_runs(storage_url: str) -> None:
    store = _stored(open_storage(storage_url), "again")
    store.save_status("RUNNING", epoch=1)
    store.save_status("FAILED", epoch=1)
    store.save_status("RUNNING", epoch=2)  # a resume under the next lease
    assert _hints(storage_url) == {("RUNNING", "again")}
    inspector = Inspector(storage_url)
    assert _listed(inspector, "FAILED") == []
    assert _listed(inspector, "RESUMABLE") == ["again"]  # nobody holds its lease
    assert _nonzero(inspector) == {"RESUMABLE": 1}


def test_a_cancelled_workflow_leaves_the_failed_listing(
    local: Inspector, storage_url: str, tmp_path: Path
) -> None:
    with pytest.raises(workflow.WorkflowExecutionError):
        gate.step(str(tmp_path)).run(workflow_id="stopped")
    workflow.cancel("stopped")
    assert _hints(storage_url) == {("CANCELED", "stopped")}
    assert _listed(local, "CANCELED") == ["stopped"]
    assert _listed(local, "FAILED") == []
    assert _nonzero(local) == {"CANCELED": 1}


def test_a_deleted_workflow_leaves_no_hint(local: Inspector, storage_url: str) -> None:
    add.step(1, 2).run(workflow_id="gone")
    add.step(1, 2).run(workflow_id="kept")
    workflow.delete("gone")
    assert _hints(storage_url) == {("SUCCESSFUL", "kept")}
    assert _listed(local, "SUCCESSFUL") == ["kept"]
    assert _nonzero(local) == {"SUCCESSFUL": 1}


def test_gc_removes_the_hints_of_what_it_deletes(local: Inspector, storage_url: str) -> None:
    add.step(1, 2).run(workflow_id="old")
    report = collect_garbage(open_storage(storage_url), older_than=0.0, now=float("inf"))
    assert report.deleted == ("old",)
    assert _hints(storage_url) == set()
    assert _nonzero(local) == {}


def test_list_all_with_a_status_reads_the_hinted_workflows_and_believes_their_records(
    local: Inspector, storage_url: str, tmp_path: Path
) -> None:
    add.step(1, 2).run(workflow_id="fine")
    with pytest.raises(workflow.WorkflowExecutionError):
        gate.step(str(tmp_path)).run(workflow_id="broken")
    open_storage(storage_url).put(f"{STATUS_HINTS}/FAILED/fine", b"")  # stale
    assert workflow.list_all("FAILED") == [("broken", workflow.WorkflowStatus.FAILED)]
    assert workflow.list_all({"SUCCESSFUL"}) == [("fine", workflow.WorkflowStatus.SUCCESSFUL)]


def test_a_created_workflow_without_a_status_record_is_found_as_resumable(storage_url: str) -> None:
    _stored(open_storage(storage_url), "never-started")
    inspector = Inspector(storage_url)
    assert _listed(inspector, "RESUMABLE") == ["never-started"]
    assert _nonzero(inspector) == {"RESUMABLE": 1}


# -- crashes and races ---------------------------------------------------------------------------------
def test_a_writer_stopped_before_its_status_record_leaves_only_an_extra_hint(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "cut").save_status("RUNNING", epoch=1, started_at=1.0)
    failing = WorkflowStore(FailingStorage(storage, "workflows/cut/statuses"), "cut")
    with pytest.raises(StoragePermanentError):
        failing.save_status("FAILED", epoch=1)  # its hint was written, its record was not
    assert ("FAILED", "cut") in _hints(storage_url)
    inspector = Inspector(storage_url)
    assert _listed(inspector, "FAILED") == []  # the record says RUNNING: the hint is not believed
    assert _listed(inspector, "RESUMABLE") == ["cut"]
    assert _nonzero(inspector) == {"RESUMABLE": 1}
    assert _hints(storage_url) == {("RUNNING", "cut")}  # and the readers removed it


def test_a_writer_stopped_before_removing_the_old_hint_still_lists_correctly(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "half").save_status("RUNNING", epoch=1)
    failing = WorkflowStore(FailingStorage(storage, f"{STATUS_HINTS}/RUNNING", "delete"), "half")
    with pytest.raises(StoragePermanentError):
        failing.save_status("FAILED", epoch=1)  # its record was written, the old hint stayed
    assert _hints(storage_url) == {("RUNNING", "half"), ("FAILED", "half")}
    inspector = Inspector(storage_url)
    assert _nonzero(inspector) == {"FAILED": 1}
    assert _listed(inspector, "FAILED") == ["half"]
    assert _listed(inspector, "RESUMABLE") == []
    assert _hints(storage_url) == {("FAILED", "half")}


@pytest.mark.needs_persistent_storage  # a child process writes, this one reads
def test_a_process_killed_after_writing_a_status_still_lists_it_under_that_status(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "killed").save_status("RUNNING", epoch=1)
    child = run_child(
        f"""
        import os
        from durably._resolve import open_storage
        from durably._store import WorkflowStore

        class DiesAfterTheRecord:
            def __init__(self, inner):
                self.inner, self.url = inner, inner.url
            def __getattr__(self, name):
                return getattr(self.inner, name)
            def put(self, key, data):
                self.inner.put(key, data)
                if "/statuses/" in key:
                    sync = getattr(self.inner, "sync", None)
                    if sync is not None:
                        sync("workflows/killed")
                    os._exit(9)  # dies between the status record and the rest of the transition

        store = WorkflowStore(DiesAfterTheRecord(open_storage({storage_url!r})), "killed")
        store.save_status("FAILED", epoch=1, error=RuntimeError("boom"))
        """
    )
    assert child.returncode == 9, child.stderr
    inspector = Inspector(storage_url)
    assert _listed(inspector, "FAILED") == ["killed"]
    assert _listed(inspector, "RESUMABLE") == []
    assert _nonzero(inspector) == {"FAILED": 1}


def test_removing_a_hint_puts_it_back_when_the_workflow_has_that_status(storage_url: str) -> None:
    store = _stored(open_storage(storage_url), "raced")
    store.save_status("FAILED", epoch=1)
    assert store.drop_status_hint("FAILED") is False  # a reader that looked before the record
    assert _hints(storage_url) == {("FAILED", "raced")}
    assert store.drop_status_hint("SUCCESSFUL") is True


def test_a_hint_a_racing_reader_removed_is_restored_by_the_writer(storage_url: str) -> None:
    storage = open_storage(storage_url)
    store = _stored(storage, "late")
    store.save_status("RUNNING", epoch=1)
    storage.delete_prefix(f"{STATUS_HINTS}/FAILED/late")  # nothing to remove: the hint is not there yet

    class RemovesTheHintBeforeTheRecord(FailingStorage):
        def put(self, key: str, data: bytes) -> None:
            if "/statuses/" in key:  # a reader saw RUNNING and removed the new hint meanwhile
                self.inner.delete_prefix(f"{STATUS_HINTS}/FAILED/late")
            self.inner.put(key, data)

    racing = WorkflowStore(RemovesTheHintBeforeTheRecord(storage, "-"), "late")
    racing.save_status("FAILED", epoch=1)
    assert _hints(storage_url) == {("FAILED", "late")}
    assert _listed(Inspector(storage_url), "FAILED") == ["late"]


# -- storages written before the index ------------------------------------------------------------------
def _unindexed(storage_url: str, statuses: list[str]) -> Storage:
    """A storage as a version before the index left it: workflows, no hints, no marker."""
    storage = open_storage(storage_url)
    for number, status in enumerate(statuses):
        _stored(storage, f"wf-{number}").save_status(status, epoch=0)
    storage.delete_prefix("statusindex")
    return storage


def test_the_first_workflow_of_an_empty_storage_marks_the_index_built(storage_url: str) -> None:
    storage = open_storage(storage_url)
    assert not Inspector(storage_url).status_index_built()
    _stored(storage, "first")
    assert storage.exists(STATUS_INDEX_BUILT)
    assert Inspector(storage_url).status_index_built()


def test_a_storage_without_the_index_is_still_listed_and_counted_correctly(storage_url: str) -> None:
    _unindexed(storage_url, ["FAILED", "SUCCESSFUL", "FAILED"])
    inspector = Inspector(storage_url)
    assert not inspector.status_index_built()
    assert _listed(inspector, "FAILED") == ["wf-2", "wf-0"]
    assert _nonzero(inspector) == {"FAILED": 2, "SUCCESSFUL": 1}


def test_rebuild_hints_every_workflow_and_marks_the_index_built(storage_url: str) -> None:
    storage = _unindexed(storage_url, ["FAILED", "SUCCESSFUL", "CANCELED"])
    storage.put(f"{STATUS_HINTS}/PENDING/wf-1", b"")  # stale
    storage.put(f"{STATUS_HINTS}/FAILED/deleted-long-ago", b"")  # a workflow that is gone
    inspector = Inspector(storage_url)
    report = inspector.rebuild_status_index()
    assert (report.workflows, report.added, report.removed) == (3, 3, 2)
    assert inspector.status_index_built()
    assert _hints(storage_url) == {("FAILED", "wf-0"), ("SUCCESSFUL", "wf-1"), ("CANCELED", "wf-2")}
    assert _listed(inspector, "FAILED") == ["wf-0"]
    assert _nonzero(inspector) == {"FAILED": 1, "SUCCESSFUL": 1, "CANCELED": 1}


def test_gc_restores_a_missing_hint(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "lost").save_status("FAILED", epoch=1)
    storage.delete_prefix(f"{STATUS_HINTS}/FAILED/lost")  # the one way it can go missing
    report = collect_garbage(storage)
    assert report.index is not None and report.index.added == 1
    assert _listed(Inspector(storage_url), "FAILED") == ["lost"]


def test_the_cli_rebuilds_the_index_and_lists_counts(storage_url: str) -> None:
    _unindexed(storage_url, ["FAILED", "SUCCESSFUL"])
    runner = CliRunner()
    before = runner.invoke(cli, ["list", "--status", "FAILED", "--storage", storage_url])
    assert before.exit_code == 0, before.output
    assert "durably index rebuild" in before.stderr
    rebuilt = runner.invoke(cli, ["index", "rebuild", "--storage", storage_url])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "2 workflows read, 2 hints added, 0 stale hints removed" in rebuilt.output
    listed = runner.invoke(cli, ["list", "--counts", "--json", "--storage", storage_url])
    assert listed.exit_code == 0, listed.output
    assert "durably index rebuild" not in listed.stderr
    assert '"FAILED": 1' in listed.stdout and '"SUCCESSFUL": 1' in listed.stdout
