"""Retention and gc: what expires when, what gc deletes, and that it is safe against crashes and resumes."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durably import workflow
from durably._durations import parse_duration
from durably._graph import flatten
from durably._lease import Lease
from durably._resolve import open_storage
from durably._retention import collect_garbage
from durably._store import WorkflowStore
from durably.inspect import Inspector
from durably.storage import Storage

WAIT = 120.0
DAY = 86400.0


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step(max_retries=0)
def gate(folder: str) -> int:
    if not Path(folder, "open").exists():
        raise RuntimeError("the gate is closed")
    return 2


@workflow.step
def hold(folder: str) -> str:
    deadline = time.monotonic() + WAIT
    while not Path(folder, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


def _keys(storage: Storage, workflow_id: str) -> list[str]:
    """Every key a workflow has: its records, its index entry, a deletion marker."""
    markers = [key for key in (f"index/{workflow_id}", f"deleting/{workflow_id}") if storage.exists(key)]
    return list(storage.list(f"workflows/{workflow_id}")) + markers


def _stored(storage: Storage, workflow_id: str, status: str, ended: float, retention: float | None) -> None:
    """A finished workflow written through the store (with a queued event message), not run."""
    store = WorkflowStore(storage, workflow_id)
    store.create(flatten(add.step(1, add.step(2, 3))), {}, retention)
    store.save_step_output("add", 5, {"name": "add"})
    store.add_message("late", {"n": 1})
    store.save_status(status, epoch=0, started_at=ended - 1, ended_at=ended)


# -- durations -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (timedelta(hours=2), 7200.0),
        (90, 90.0),
        (1.5, 1.5),
        ("30d", 30 * DAY),
        ("1h30m", 5400.0),
        ("45", 45.0),
    ],
)
def test_durations_in_every_accepted_form(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "3 parsecs", -1, True, "", float("nan")])
def test_a_bad_duration_names_the_setting_and_the_accepted_forms(value: Any) -> None:
    with pytest.raises(ValueError, match=r"retention must be a duration.*'30d'"):
        parse_duration(value)


def test_init_refuses_a_bad_retention_before_changing_anything(storage_url: str, tmp_path: Path) -> None:
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(ValueError, match="retention"):
        workflow.init(storage=str(tmp_path / "other"), executor="local", retention="forever-ish")
    add.step(1, 2).run(workflow_id="still-here")
    assert Inspector(storage_url).get_summary("still-here").status == "SUCCESSFUL"


def test_run_refuses_a_bad_retention_before_storing_anything(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(ValueError, match="retention"):
        add.step(1, 2).run(workflow_id="never", retention="a while")
    assert Inspector(storage_url).list_workflows().items == ()


# -- what is recorded ------------------------------------------------------------------------------
def test_a_finished_workflow_expires_its_retention_after_it_ended(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local", retention="30d")
    add.step(1, 2).run(workflow_id="kept")
    detail = Inspector(storage_url).get_workflow("kept")
    ended = WorkflowStore(open_storage(storage_url), "kept").load_status_meta()["ended_at"]  # type: ignore[index]
    assert detail.expires_at == pytest.approx(ended + 30 * DAY)


def test_a_run_overrides_the_default_retention(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local", retention="30d")
    add.step(1, 2).run(workflow_id="short", retention=timedelta(hours=1))
    detail = Inspector(storage_url).get_workflow("short")
    ended = WorkflowStore(open_storage(storage_url), "short").load_status_meta()["ended_at"]  # type: ignore[index]
    assert detail.expires_at == pytest.approx(ended + 3600)


def test_without_retention_a_workflow_never_expires(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    add.step(1, 2).run(workflow_id="forever")
    assert Inspector(storage_url).get_workflow("forever").expires_at is None


def test_ray2_style_run_takes_a_retention(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    workflow.run(add.step(1, 2), workflow_id="dag", retention=60)
    assert Inspector(storage_url).get_workflow("dag").expires_at is not None


# -- what gc deletes -------------------------------------------------------------------------------
def test_gc_deletes_every_record_of_expired_workflows_mailboxes_included(storage_url: str) -> None:
    storage = open_storage(storage_url)
    now = time.time()
    _stored(storage, "expired", "SUCCESSFUL", now - 2 * DAY, retention=DAY)
    report = collect_garbage(storage, now=now)
    assert report.deleted == ("expired",)
    assert _keys(storage, "expired") == []


def test_gc_keeps_what_has_not_expired_or_has_no_retention(storage_url: str) -> None:
    storage = open_storage(storage_url)
    now = time.time()
    _stored(storage, "young", "SUCCESSFUL", now - 60, retention=DAY)
    _stored(storage, "forever", "FAILED", now - 365 * DAY, retention=None)
    assert collect_garbage(storage, now=now).deleted == ()
    assert {item.workflow_id for item in Inspector(storage_url).list_workflows().items} == {
        "young",
        "forever",
    }


def test_older_than_replaces_the_retention_and_status_narrows_it(storage_url: str) -> None:
    storage = open_storage(storage_url)
    now = time.time()
    _stored(storage, "old-failed", "FAILED", now - 40 * DAY, retention=None)
    _stored(storage, "old-canceled", "CANCELED", now - 40 * DAY, retention=None)
    _stored(storage, "new-failed", "FAILED", now - DAY, retention=None)
    report = collect_garbage(storage, older_than=30 * DAY, statuses=["FAILED"], now=now)
    assert report.deleted == ("old-failed",)


def test_dry_run_reports_and_deletes_nothing(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "expired", "SUCCESSFUL", time.time() - 2 * DAY, retention=DAY)
    assert collect_garbage(storage, dry_run=True).deleted == ("expired",)
    assert Inspector(storage_url).get_summary("expired").status == "SUCCESSFUL"


def test_gc_never_deletes_a_running_workflow(storage_url: str, tmp_path: Path) -> None:
    workflow.init(storage=storage_url, executor="local", retention=0)
    running = hold.step(str(tmp_path)).run_async(workflow_id="busy")
    deadline = time.monotonic() + WAIT
    while workflow.get_status("busy") != workflow.WorkflowStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert collect_garbage(open_storage(storage_url), older_than=0).deleted == ()
    (tmp_path / "release").touch()
    assert running.result(timeout=WAIT) == "released"
    assert collect_garbage(open_storage(storage_url)).deleted == ("busy",)


def test_gc_skips_a_finished_workflow_whose_lease_a_resume_holds(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "resuming", "FAILED", time.time() - 2 * DAY, retention=DAY)
    store = WorkflowStore(storage, "resuming")
    lease = Lease(storage, store.lease_key, "resuming")  # as the driver builds it
    lease.acquire()  # what a resume does first, before it writes RUNNING
    try:
        report = collect_garbage(storage)
        assert report.deleted == ()
        assert [workflow_id for workflow_id, _ in report.skipped] == ["resuming"]
    finally:
        lease.release()
    assert collect_garbage(storage).deleted == ("resuming",)


def test_a_resume_racing_gc_leaves_a_whole_workflow_or_none(storage_url: str, tmp_path: Path) -> None:
    workflow.init(storage=storage_url, executor="local", retention=0)
    inspector = Inspector(storage_url)
    storage = open_storage(storage_url)
    for round_number in range(6):
        folder = tmp_path / str(round_number)
        folder.mkdir()
        workflow_id = f"race-{round_number}"
        with pytest.raises(workflow.WorkflowExecutionError):
            add.step(1, gate.step(str(folder))).run(workflow_id=workflow_id)
        (folder / "open").touch()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            resumed = pool.submit(workflow.resume, workflow_id)
            collected = pool.submit(collect_garbage, storage, older_than=3600 if round_number % 2 else 0)
            collect_result = collected.result(timeout=WAIT)
            try:
                value: Any = resumed.result(timeout=WAIT)
            except workflow.WorkflowError as error:
                value = error
        if workflow_id in collect_result.deleted:
            # The resume was refused (gc held the lease), or had finished before gc looked.
            assert isinstance(value, workflow.WorkflowError) or value == 3
            with pytest.raises(workflow.WorkflowNotFoundError):
                inspector.get_summary(workflow_id)
            assert not storage.exists(f"index/{workflow_id}")
            assert not storage.exists(f"workflows/{workflow_id}/graph")
        else:
            assert value == 3
            assert inspector.get_summary(workflow_id).status == "SUCCESSFUL"
            assert workflow.get_output(workflow_id) == 3


CRASHING_GC = """
import os, sys, time
from durably._resolve import open_storage
from durably._retention import collect_garbage

storage = open_storage({storage!r})
flag = {flag!r}


class StopsHalfWay:
    # Deletes half of a workflow's remaining keys, then hangs until the test kills this process.
    url = storage.url

    def __getattr__(self, name):
        return getattr(storage, name)

    def delete_prefix(self, prefix):
        if prefix.startswith("workflows/") and not prefix.endswith(("/meta", "/lease")):
            keys = list(storage.list(prefix))
            for key in keys[: len(keys) // 2]:
                storage.delete_prefix(key)
            open(flag, "w").close()
            time.sleep(600)
        return storage.delete_prefix(prefix)


collect_garbage(StopsHalfWay())
"""


@pytest.mark.needs_persistent_storage
def test_a_gc_killed_half_way_leaves_no_valid_looking_half_and_the_next_gc_finishes(
    storage_url: str, tmp_path: Path
) -> None:
    storage = open_storage(storage_url)
    now = time.time()
    _stored(storage, "a-doomed", "SUCCESSFUL", now - 2 * DAY, retention=DAY)
    _stored(storage, "b-kept", "SUCCESSFUL", now - 60, retention=DAY)
    flag = tmp_path / "half-way"
    script = textwrap.dedent(CRASHING_GC.format(storage=storage_url, flag=str(flag)))
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT
        while not flag.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flag.exists(), child.stderr.read() if child.poll() is not None else "gc never got there"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    inspector = Inspector(storage_url)
    assert storage.list("workflows/a-doomed")  # half of it is still stored ...
    assert [item.workflow_id for item in inspector.list_workflows().items] == ["b-kept"]  # ... invisible
    with pytest.raises(workflow.WorkflowNotFoundError):
        inspector.get_workflow("a-doomed")
    report = collect_garbage(storage)
    assert report.finished == ("a-doomed",)
    assert _keys(storage, "a-doomed") == []
    assert inspector.get_summary("b-kept").steps_finished == 1


def test_a_deletion_stopped_before_it_hid_the_workflow_is_decided_again(storage_url: str) -> None:
    storage = open_storage(storage_url)
    _stored(storage, "marked", "SUCCESSFUL", time.time() - 60, retention=DAY)
    storage.put("deleting/marked", b"")  # a collector died right after writing its marker
    report = collect_garbage(storage)
    assert (report.deleted, report.finished) == ((), ())
    assert not storage.exists("deleting/marked")
    assert Inspector(storage_url).get_summary("marked").status == "SUCCESSFUL"


# -- the engine host and actors --------------------------------------------------------------------
def test_the_engine_host_collects_periodically_when_configured(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local", retention=0, gc_interval=0.1)
    try:
        add.step(1, 2).run(workflow_id="short-lived")
        inspector = Inspector(storage_url)
        deadline = time.monotonic() + WAIT
        while inspector.list_workflows().items and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inspector.list_workflows().items == ()
    finally:
        workflow.init(storage=storage_url, executor="local")


def test_gc_interval_must_be_positive(storage_url: str) -> None:
    with pytest.raises(ValueError, match="gc_interval"):
        workflow.init(storage=storage_url, executor="local", gc_interval=0)


@workflow.virtual_actor
class Tally:
    def __init__(self) -> None:
        self.total = 0

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total


def test_idle_actors_are_deleted_only_when_asked(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("idle").add.run(1)
    storage = open_storage(storage_url)
    assert collect_garbage(storage, older_than=0).actors == ()
    assert collect_garbage(storage, actors_idle=DAY).actors == ()
    assert collect_garbage(storage, actors_idle=0, dry_run=True).actors == ("idle",)
    assert collect_garbage(storage, actors_idle=0).actors == ("idle",)
    assert Inspector(storage_url).list_actors().items == ()
    assert list(storage.list("actors/idle")) == []
