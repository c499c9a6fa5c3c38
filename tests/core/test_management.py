"""Managing stored workflows: status, outputs, listing, resume, cancel, delete, and their errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run

from durably import workflow

pytestmark = pytest.mark.workflow


@workflow.step
def counted(counter_dir: str, name: str, value: Any) -> Any:
    record_run(counter_dir, name)
    return value


@workflow.step(max_retries=0)
def gate(counter_dir: str, value: Any) -> Any:
    record_run(counter_dir, "gate")
    if not (Path(counter_dir) / "open").exists():
        raise RuntimeError("the gate is closed")
    return value


@workflow.step
def combine(a: Any, b: Any) -> Any:
    return [a, b]


@workflow.step
def sleepy(path: str) -> str:
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "woke"


@workflow.step
def holds_on(started: str, interrupted: str) -> str:
    Path(started).touch()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.02)
    except KeyboardInterrupt:
        Path(interrupted).touch()
        raise
    return "never interrupted"


def _failing_flow(counter_dir: Path) -> Any:
    return combine.step(counted.step(str(counter_dir), "before", 1), gate.step(str(counter_dir), 2))


def test_failed_workflow_reports_failed_with_the_step_and_cause(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError) as raised:
        _failing_flow(counter_dir).run(workflow_id="broken")
    assert raised.value.workflow_id == "broken"
    assert raised.value.step_id == "gate"
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert "the gate is closed" in str(raised.value)
    assert wf.get_status("broken") == wf.WorkflowStatus.FAILED
    with pytest.raises(wf.WorkflowExecutionError, match="gate"):
        wf.get_output("broken")


@pytest.mark.storage_on_ray
def test_resume_runs_only_the_unfinished_steps(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="resumed")
    (counter_dir / "open").touch()
    assert wf.resume("resumed") == [1, 2]
    assert count_runs(counter_dir, "before") == 1
    assert count_runs(counter_dir, "gate") == 2
    assert wf.get_status("resumed") == wf.WorkflowStatus.SUCCESSFUL


@workflow.step
def slow_counted(counter_dir: str, name: str, value: Any) -> Any:
    time.sleep(1.0)
    record_run(counter_dir, name)
    return value


def test_a_failure_is_reported_once_the_running_siblings_have_checkpointed(
    wf: Any, counter_dir: Path
) -> None:
    # The sibling is still running when the gate fails. Reporting the failure at once would let
    # a resume start while it runs, and run it a second time (found by CI on S3).
    flow = combine.step(slow_counted.step(str(counter_dir), "sibling", 1), gate.step(str(counter_dir), 2))
    with pytest.raises(wf.WorkflowExecutionError):
        flow.run(workflow_id="drained")
    assert count_runs(counter_dir, "sibling") == 1
    (counter_dir / "open").touch()
    assert wf.resume("drained") == [1, 2]
    assert count_runs(counter_dir, "sibling") == 1


def test_resume_async_returns_a_handle_to_the_output(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="resumed-async")
    (counter_dir / "open").touch()
    handle = wf.resume_async("resumed-async")
    assert _result(handle) == [1, 2]


@workflow.step(max_retries=0)
def gate_then_sleepy(counter_dir: str) -> str:
    if not (Path(counter_dir) / "open").exists():
        raise RuntimeError("the gate is closed")
    return sleepy.step(str(Path(counter_dir) / "wake"))  # type: ignore[return-value]


def test_a_failed_workflow_being_resumed_is_running_from_the_resume_call(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        gate_then_sleepy.step(str(counter_dir)).run(workflow_id="back")
    (counter_dir / "open").touch()
    handle = wf.resume_async("back")
    assert wf.get_status("back") == wf.WorkflowStatus.RUNNING
    assert ("back", wf.WorkflowStatus.RUNNING) in wf.list_all()
    (counter_dir / "wake").touch()
    assert _result(handle) == "woke"


def _result(handle: Any) -> Any:
    import concurrent.futures

    if isinstance(handle, concurrent.futures.Future):
        return handle.result(timeout=120)
    import ray

    return ray.get(handle, timeout=120)


def test_resume_all_resumes_failed_ones_only_when_asked(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="to-resume")
    assert wf.resume_all() == []
    (counter_dir / "open").touch()
    resumed = wf.resume_all(include_failed=True)
    assert [workflow_id for workflow_id, _ in resumed] == ["to-resume"]
    assert _result(resumed[0][1]) == [1, 2]


def test_list_all_filters_by_status_name_or_set(wf: Any, counter_dir: Path) -> None:
    counted.step(str(counter_dir), "ok", 1).run(workflow_id="good")
    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="bad")
    assert sorted(wf.list_all()) == [
        ("bad", wf.WorkflowStatus.FAILED),
        ("good", wf.WorkflowStatus.SUCCESSFUL),
    ]
    assert wf.list_all(wf.WorkflowStatus.FAILED) == [("bad", wf.WorkflowStatus.FAILED)]
    assert wf.list_all("successful") == [("good", wf.WorkflowStatus.SUCCESSFUL)]
    assert len(wf.list_all({"FAILED", wf.WorkflowStatus.SUCCESSFUL})) == 2
    with pytest.raises(ValueError, match="unknown status"):
        wf.list_all("DONE")


@pytest.mark.storage_on_ray
def test_cancel_stops_a_running_workflow(wf: Any, tmp_path: Path) -> None:
    wake = tmp_path / "wake"
    handle = sleepy.step(str(wake)).run_async(workflow_id="to-cancel")
    try:
        deadline = time.monotonic() + 60
        while wf.get_status("to-cancel") != wf.WorkflowStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        wf.cancel("to-cancel")
        assert wf.get_status("to-cancel") == wf.WorkflowStatus.CANCELED
        with pytest.raises(Exception, match="cancel"):
            _result(handle)
        with pytest.raises(wf.WorkflowNotResumableError, match="cancelled"):
            wf.resume("to-cancel")
    finally:
        # The local executor cannot interrupt a running step: wake it, or its thread writes to
        # the storage server long after the session stopped it (and holds the interpreter's exit).
        wake.touch()


def test_cancel_interrupts_a_step_running_on_a_ray_worker_that_ignores_sigint(
    ray_cluster: Any, storage_url: str, tmp_path: Path
) -> None:
    # The test cluster's processes ignore SIGINT (tests/servers/ray_cluster.py), as those of a
    # cluster started from a script's background job do; Ray's cancel reaches a step through it.
    workflow.init(storage=storage_url, executor="ray")
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"
    handle = holds_on.step(str(started), str(interrupted)).run_async(workflow_id="interrupt-me")
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    workflow.cancel("interrupt-me")
    with pytest.raises(Exception, match="cancel"):
        _result(handle)
    while not interrupted.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert interrupted.exists(), "the step kept running after its workflow was cancelled"


def test_cancel_of_a_failed_workflow_marks_it_canceled(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="failed-then-cancelled")
    wf.cancel("failed-then-cancelled")
    assert wf.get_status("failed-then-cancelled") == wf.WorkflowStatus.CANCELED


def test_delete_removes_every_key(wf: Any, counter_dir: Path) -> None:
    counted.step(str(counter_dir), "x", 1).run(workflow_id="doomed")
    storage = workflow_storage()
    assert any(key.startswith("workflows/doomed/") for key in storage.list("workflows"))
    wf.delete("doomed")
    assert [key for key in storage.list("") if "doomed" in key] == []
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_status("doomed")


def workflow_storage() -> Any:
    from durably._api import storage

    return storage()


def test_delete_is_refused_while_running(wf: Any, tmp_path: Path) -> None:
    gate_file = tmp_path / "gate"
    handle = sleepy.step(str(gate_file)).run_async(workflow_id="running")
    deadline = time.monotonic() + 60
    while wf.get_status("running") != wf.WorkflowStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(wf.WorkflowRunningError, match="running"):
        wf.delete("running")
    gate_file.touch()
    assert _result(handle) == "woke"
    wf.delete("running")


@pytest.mark.parametrize(
    "call",
    [
        lambda wf: wf.get_status("nope"),
        lambda wf: wf.get_output("nope"),
        lambda wf: wf.get_metadata("nope"),
        lambda wf: wf.resume("nope"),
        lambda wf: wf.cancel("nope"),
        lambda wf: wf.delete("nope"),
    ],
)
def test_unknown_ids_raise_workflow_not_found(wf: Any, call: Any) -> None:
    with pytest.raises(wf.WorkflowNotFoundError, match="nope"):
        call(wf)


def test_unknown_step_name_raises_not_found(wf: Any, counter_dir: Path) -> None:
    counted.step(str(counter_dir), "x", 1).run(workflow_id="has-steps")
    with pytest.raises(wf.WorkflowNotFoundError, match="no_such_step"):
        wf.get_output("has-steps", name="no_such_step")


# -- cancel against a run that is taking its lease ----------------------------------------------
@workflow.step
def touches(path: str) -> str:
    Path(path).touch()
    return "ran"


@pytest.fixture
def held_lease(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(reached, release): every driver stops just before it takes its lease until ``release`` is set."""
    from durably import _driver

    reached, release = threading.Event(), threading.Event()

    class HeldLease(_driver.Lease):
        def acquire(self) -> None:
            reached.set()
            release.wait(60)
            super().acquire()

    monkeypatch.setattr(_driver, "Lease", HeldLease)
    yield reached, release
    release.set()


def _start_held(storage_url: str, tmp_path: Path, reached: threading.Event) -> tuple[Any, Path]:
    """Start a one-step run that stops before its lease; its handle, and the file its step makes."""
    workflow.init(storage=storage_url, executor="local")
    marker = tmp_path / "ran"
    handle = touches.step(str(marker)).run_async(workflow_id="held")
    assert reached.wait(60)
    return handle, marker


def test_a_cancel_while_a_run_takes_its_lease_stops_it_before_its_first_step(
    storage_url: str, tmp_path: Path, held_lease: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The canceller does not know the run (another process, or the dashboard's): it finds no
    # driver, records CANCELED itself and returns. The run then takes the lease: it must not
    # write RUNNING over the cancel and run (before: it did, and waited for its event for ever).
    from durably import _api

    reached, release = held_lease
    handle, marker = _start_held(storage_url, tmp_path, reached)
    monkeypatch.setattr(_api, "_started_here", frozenset)
    workflow.cancel("held")
    assert workflow.get_status("held") == workflow.WorkflowStatus.CANCELED
    release.set()
    with pytest.raises(workflow.WorkflowCancellationError):
        handle.result(timeout=60)
    assert workflow.get_status("held") == workflow.WorkflowStatus.CANCELED
    assert not marker.exists(), "the cancelled workflow ran its step"


def test_a_second_init_still_knows_and_cancels_the_runs_the_first_started(
    storage_url: str, tmp_path: Path, held_lease: Any
) -> None:
    reached, release = held_lease
    handle, marker = _start_held(storage_url, tmp_path, reached)
    workflow.init(storage=storage_url, executor="local")  # as the dashboard's first action does
    assert workflow.get_status("held") == workflow.WorkflowStatus.RUNNING
    cancelling = threading.Thread(target=workflow.cancel, args=("held",))
    cancelling.start()
    time.sleep(0.2)  # the cancel is waiting for the run to stop (either order must work)
    release.set()
    cancelling.join(60)
    assert not cancelling.is_alive()
    assert workflow.get_status("held") == workflow.WorkflowStatus.CANCELED
    with pytest.raises(workflow.WorkflowCancellationError):
        handle.result(timeout=60)
    assert not marker.exists(), "the cancelled workflow ran its step"


def test_resume_is_not_stopped_by_a_cancel_left_from_before(wf: Any, counter_dir: Path) -> None:
    # A cancel that came as the workflow failed is never answered (nothing was running to stop).
    from durably._inspect import existing_store

    with pytest.raises(wf.WorkflowExecutionError):
        _failing_flow(counter_dir).run(workflow_id="failed-with-a-cancel")
    existing_store("failed-with-a-cancel").request_cancel()
    (counter_dir / "open").touch()
    assert wf.resume("failed-with-a-cancel") == [1, 2]


def test_get_output_of_a_step_that_finished_between_two_reads(
    wf: Any, counter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader found the step unfinished, then the workflow ended before it asked whether
    # anything still runs it: the step is done, not "not finished yet".
    from durably import _inspect

    counted.options(name="named").step(str(counter_dir), "x", 5).run(workflow_id="ended-between")
    real, calls = _inspect.step_output, []

    def first_read_too_early(store: Any, name: str) -> Any:
        calls.append(name)
        if len(calls) == 1:
            raise wf.WorkflowError(f"step {name!r} has not finished yet")
        return real(store, name)

    monkeypatch.setattr(_inspect, "step_output", first_read_too_early)
    assert wf.get_output("ended-between", name="named") == 5
    assert len(calls) == 2
