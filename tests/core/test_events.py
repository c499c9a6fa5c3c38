"""Events and timers: wait_for_event, sleep and send_event, exactly once, on both executors."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, run_child
from event_support import (
    WAIT,
    ArgumentsListener,
    FailingListener,
    FailingOnceWaitingListener,
    FileEventListener,
    child_script,
    received,
    woke_at,
)

from durably import workflow
from durably._plugins import get_registry


def _emit(folder: Path, name: str, text: str) -> None:
    partial = folder / f"{name}.partial"
    partial.write_text(text)
    partial.rename(folder / f"{name}.event")


def _wait_until(condition: Any, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _status_is(workflow_id: str, status: workflow.WorkflowStatus) -> bool:
    return bool(workflow.get_status(workflow_id) == status)


# -- wait_for_event --------------------------------------------------------------------------
def test_event_is_the_output_of_the_wait_step(wf: Any, counter_dir: Path) -> None:
    _emit(counter_dir, "order", "paid")
    flow = received.step(wf.wait_for_event(FileEventListener, str(counter_dir), "order"))
    assert flow.run(workflow_id="w") == (str(counter_dir), "paid")


def test_event_is_acknowledged_once_after_a_run(wf: Any, counter_dir: Path) -> None:
    _emit(counter_dir, "order", "paid")
    wf.wait_for_event(FileEventListener, str(counter_dir), "order").run(workflow_id="w")
    assert (count_runs(counter_dir, "poll-order"), count_runs(counter_dir, "ack-paid")) == (1, 1)


def test_listener_is_built_without_arguments_and_the_arguments_go_to_poll(wf: Any) -> None:
    @wf.step
    def three() -> int:
        return 3

    event = wf.wait_for_event(ArgumentsListener, "a", three.step(), flag=True).run(workflow_id="w")
    assert event == (((), {}), ("a", 3), {"flag": True})


def test_wait_step_output_is_stored_like_a_step_output(wf: Any, counter_dir: Path) -> None:
    _emit(counter_dir, "order", "paid")
    wf.wait_for_event(FileEventListener, str(counter_dir), "order").run(workflow_id="w")
    assert wf.get_output("w", name="wait_for_event") == (str(counter_dir), "paid")


def test_finished_wait_is_not_polled_again_on_a_rerun(wf: Any, counter_dir: Path) -> None:
    _emit(counter_dir, "order", "paid")
    flow = wf.wait_for_event(FileEventListener, str(counter_dir), "order")
    flow.run(workflow_id="w")
    assert wf.resume("w") == (str(counter_dir), "paid")
    assert count_runs(counter_dir, "poll-order") == 1


def test_failing_listener_fails_the_workflow_naming_the_step(wf: Any) -> None:
    with pytest.raises(wf.WorkflowExecutionError, match=r"wait_for_event.*ConnectionError: broker gone"):
        wf.wait_for_event(FailingListener, "broker gone").run(workflow_id="w")
    assert wf.get_status("w") == wf.WorkflowStatus.FAILED


@pytest.mark.parametrize(
    "listener, named",
    [(42, "int"), (dict, "dict"), (FileEventListener(), "an instance of FileEventListener")],
)
def test_wait_for_event_rejects_what_is_not_a_listener_class_naming_its_type(
    listener: Any, named: str
) -> None:
    with pytest.raises(TypeError, match=named):
        workflow.wait_for_event(listener, "x")


def test_wait_for_event_rejects_an_unknown_listener_name_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'no-such'.*external.*timer"):
        workflow.wait_for_event("no-such")


def test_built_in_listeners_are_registered_through_the_plugin_hook() -> None:
    listeners = get_registry().event_listeners()
    assert listeners["external"] is workflow.ExternalEvent
    assert listeners["timer"].__name__ == "TimerListener"


def test_listener_given_by_name_is_used(wf: Any) -> None:
    handle = wf.wait_for_event("external", "approval").run_async(workflow_id="w")
    _wait_until(lambda: _status_is("w", wf.WorkflowStatus.RUNNING), "the workflow to run")
    wf.send_event("w", "approval", "yes")
    assert _result(handle) == "yes"


def test_cancelling_a_waiting_workflow_stops_its_listener(wf: Any, counter_dir: Path) -> None:
    wf.wait_for_event(FileEventListener, str(counter_dir), "never").run_async(workflow_id="w")
    # Waiting: its listener runs (a cancel before that stops the run before it starts one).
    _wait_until(lambda: count_runs(counter_dir, "waiting-never") == 1, "the listener to wait")
    wf.cancel("w")
    assert wf.get_status("w") == wf.WorkflowStatus.CANCELED
    _wait_until(lambda: count_runs(counter_dir, "cancelled-never") == 1, "the listener to be cancelled")


# -- exactly once across crashes -------------------------------------------------------------
RUN_FILE_EVENT = """
print(received.step(workflow.wait_for_event(FileEventListener, {folder!r}, "order")).run(workflow_id="w"))
"""


def _crash_child(storage_url: str, counter_dir: Path, marker: str) -> None:
    (counter_dir / marker).touch()
    child = run_child(child_script(storage_url, RUN_FILE_EVENT.format(folder=str(counter_dir))))
    assert child.returncode == -signal.SIGKILL, child.stderr


@pytest.mark.needs_persistent_storage
def test_crash_before_the_event_is_stored_polls_again(storage_url: str, counter_dir: Path) -> None:
    _emit(counter_dir, "order", "first")
    _crash_child(storage_url, counter_dir, "crash-after-poll")
    _emit(counter_dir, "order", "second")
    workflow.init(storage=storage_url, executor="local")
    assert workflow.resume("w") == (str(counter_dir), "second")
    assert count_runs(counter_dir, "poll-order") == 2
    assert (count_runs(counter_dir, "ack-first"), count_runs(counter_dir, "ack-second")) == (0, 1)


@pytest.mark.needs_persistent_storage
def test_crash_after_the_event_is_stored_uses_it_and_acknowledges_it_again(
    storage_url: str, counter_dir: Path
) -> None:
    _emit(counter_dir, "order", "first")
    _crash_child(storage_url, counter_dir, "crash-in-ack")
    _emit(counter_dir, "order", "second")
    workflow.init(storage=storage_url, executor="local")
    assert workflow.resume("w") == (str(counter_dir), "first")
    assert count_runs(counter_dir, "poll-order") == 1
    assert (count_runs(counter_dir, "ack-first"), count_runs(counter_dir, "ack-second")) == (2, 0)


def test_events_actor_killed_while_waiting_polls_again_and_delivers_once(
    ray_cluster: Any, storage_url: str, counter_dir: Path
) -> None:
    import ray

    workflow.init(storage=storage_url, executor="ray")
    handle = received.step(workflow.wait_for_event(FileEventListener, str(counter_dir), "order")).run_async(
        workflow_id="w"
    )
    _wait_until(lambda: count_runs(counter_dir, "waiting-order") == 1, "the listener to wait")
    ray.kill(ray.get_actor("durably-events", namespace="durably"), no_restart=False)
    _wait_until(lambda: count_runs(counter_dir, "waiting-order") == 2, "the restarted actor to poll again")
    _emit(counter_dir, "order", "paid")
    assert _result(handle) == (str(counter_dir), "paid")
    assert (count_runs(counter_dir, "poll-order"), count_runs(counter_dir, "ack-paid")) == (1, 1)


# -- sleep -----------------------------------------------------------------------------------
def test_sleep_ends_at_its_recorded_deadline(wf: Any) -> None:
    started = time.time()
    woke = woke_at.step(wf.sleep(1)).run(workflow_id="w")
    deadline = wf.get_output("w", name="sleep.deadline")
    assert started + 1 <= deadline <= woke


def test_sleep_output_is_none(wf: Any) -> None:
    assert wf.sleep(0).run(workflow_id="w") is None


def test_sleep_starts_when_the_workflow_runs_not_when_it_is_built(wf: Any) -> None:
    flow = woke_at.step(wf.sleep(1))
    built = time.time()
    _wait_until(lambda: time.time() > built + 1.5, "the sleep's duration to pass after building")
    run_started = time.time()
    flow.run(workflow_id="w")
    assert wf.get_output("w", name="sleep.deadline") >= run_started + 1


@pytest.mark.parametrize("seconds, error", [(-1, ValueError), (float("inf"), ValueError), ("5", TypeError)])
def test_sleep_rejects_what_is_not_a_duration(seconds: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        workflow.sleep(seconds)


SLEEP_AND_DIE = """
import os, signal
handle = woke_at.step(workflow.sleep({seconds})).run_async(workflow_id="w")
deadline = None
for _ in range(6000):
    try:
        deadline = workflow.get_output("w", name="sleep.deadline")
        break
    except workflow.WorkflowError:
        time.sleep(0.01)
print(deadline, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _sleep_and_crash(storage_url: str, seconds: float) -> float:
    child = run_child(child_script(storage_url, SLEEP_AND_DIE.format(seconds=seconds)))
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage_url, executor="local")
    return float(workflow.get_output("w", name="sleep.deadline"))


@pytest.mark.needs_persistent_storage
def test_resumed_sleep_waits_only_for_what_is_left(storage_url: str) -> None:
    seconds = 8
    deadline = _sleep_and_crash(storage_url, seconds)
    _wait_until(lambda: time.time() > deadline - seconds / 2, "half the sleep to pass")
    resumed = time.time()
    woke = workflow.resume("w")
    assert deadline <= woke < resumed + seconds  # a restarted sleep would wake at resumed + seconds


@pytest.mark.needs_persistent_storage
def test_resumed_sleep_whose_deadline_passed_returns_at_once(storage_url: str) -> None:
    seconds = 3
    deadline = _sleep_and_crash(storage_url, seconds)
    _wait_until(lambda: time.time() > deadline, "the deadline to pass")
    resumed = time.time()
    woke = workflow.resume("w")
    assert woke < resumed + seconds
    assert workflow.get_output("w", name="sleep.deadline") == deadline


# -- external events -------------------------------------------------------------------------
def _result(handle: Any) -> Any:
    import ray

    if isinstance(handle, ray.ObjectRef):
        return ray.get(handle, timeout=WAIT)
    return handle.result(timeout=WAIT)


def test_sent_event_reaches_the_waiting_workflow(wf: Any) -> None:
    handle = received.step(wf.wait_for_event(wf.ExternalEvent, "approval")).run_async(workflow_id="w")
    _wait_until(lambda: _status_is("w", wf.WorkflowStatus.RUNNING), "the workflow to run")
    wf.send_event("w", "approval", {"by": "ann"})
    assert _result(handle) == {"by": "ann"}


def test_event_sent_before_the_workflow_reaches_the_wait_is_kept(wf: Any) -> None:
    @wf.step
    def next_key(first: str) -> str:
        return first

    second = wf.wait_for_event(wf.ExternalEvent, next_key.step(wf.wait_for_event(wf.ExternalEvent, "first")))
    handle = second.run_async(workflow_id="w")
    _wait_until(lambda: _status_is("w", wf.WorkflowStatus.RUNNING), "the workflow to run")
    wf.send_event("w", "second", "kept")
    wf.send_event("w", "first", "second")
    assert _result(handle) == "kept"


def test_events_sent_twice_under_one_key_are_received_once_each_in_order(wf: Any) -> None:
    @wf.step
    def pair(first: str, second: str) -> list[str]:
        return [first, second]

    first = wf.wait_for_event(wf.ExternalEvent, "item")
    second = wf.wait_for_event(wf.ExternalEvent, "item")
    handle = pair.step(first, second).run_async(workflow_id="w")
    _wait_until(lambda: _status_is("w", wf.WorkflowStatus.RUNNING), "the workflow to run")
    wf.send_event("w", "item", "one")
    wf.send_event("w", "item", "two")
    assert sorted(_result(handle)) == ["one", "two"]


def test_event_sent_from_another_process_is_received(wf: Any, storage_url: str) -> None:
    handle = wf.wait_for_event(wf.ExternalEvent, "approval").run_async(workflow_id="w")
    _wait_until(lambda: _status_is("w", wf.WorkflowStatus.RUNNING), "the workflow to run")
    sender = run_child(
        f"""
        from durably import workflow
        workflow.init(storage={storage_url!r}, executor="local")
        workflow.send_event("w", "approval", "from afar")
        """
    )
    assert sender.returncode == 0, sender.stderr
    assert _result(handle) == "from afar"


def test_send_event_to_an_unknown_workflow_raises_not_found(wf: Any) -> None:
    with pytest.raises(wf.WorkflowNotFoundError, match="'nobody'"):
        wf.send_event("nobody", "approval", "yes")


def test_send_event_to_a_finished_workflow_says_it_finished(wf: Any) -> None:
    wf.sleep(0).run(workflow_id="w")
    with pytest.raises(wf.WorkflowError, match=r"'w'.*finished.*SUCCESSFUL"):
        wf.send_event("w", "approval", "too late")


def test_send_event_rejects_a_key_that_is_not_a_string(wf: Any) -> None:
    wf.sleep(0).run(workflow_id="w")
    with pytest.raises(TypeError, match="key"):
        wf.send_event("w", 7, "x")


# -- many waiting workflows ------------------------------------------------------------------
MANY = 200


@workflow.step
def normal_step(x: int) -> int:
    return x + 1


def test_200_workflows_waiting_for_events_do_not_starve_a_normal_step(wf: Any) -> None:
    handles = {
        f"w{n}": received.step(wf.wait_for_event(wf.ExternalEvent, "go")).run_async(workflow_id=f"w{n}")
        for n in range(MANY)
    }
    _wait_until(
        lambda: all(_status_is(workflow_id, wf.WorkflowStatus.RUNNING) for workflow_id in handles),
        "every waiting workflow to run",
    )
    assert normal_step.step(normal_step.step(1)).run(workflow_id="normal") == 3
    assert not any(_status_is(workflow_id, wf.WorkflowStatus.SUCCESSFUL) for workflow_id in handles)
    for workflow_id in handles:
        wf.send_event(workflow_id, "go", workflow_id)
    assert {workflow_id: _result(handle) for workflow_id, handle in handles.items()} == {
        w: w for w in handles
    }


def test_200_sleeping_workflows_do_not_starve_a_normal_step(wf: Any) -> None:
    seconds = 30
    handles = [woke_at.step(wf.sleep(seconds)).run_async(workflow_id=f"s{n}") for n in range(MANY)]
    deadlines = _wait_until(lambda: _deadlines(wf, MANY), "every sleep to record its deadline")
    assert normal_step.step(normal_step.step(1)).run(workflow_id="normal") == 3
    # The normal steps finished while all 200 were still asleep: none of them has finished yet.
    assert {wf.get_status(f"s{n}") for n in range(MANY)} == {wf.WorkflowStatus.RUNNING}
    woke = [_result(handle) for handle in handles]
    assert all(deadline <= wake for deadline, wake in zip(deadlines, woke, strict=True))


def _deadlines(wf: Any, count: int) -> list[float] | None:
    try:
        return [wf.get_output(f"s{n}", name="sleep.deadline") for n in range(count)]
    except wf.WorkflowError:
        return None


def test_failure_on_another_branch_stops_a_waiting_listener(wf: Any, counter_dir: Path) -> None:
    @wf.step
    def both(event: Any, failed: Any) -> None:
        return None

    waiting = wf.wait_for_event(FileEventListener, str(counter_dir), "never")
    # It fails once the other listener polls: a failure before that stops the other event step
    # before it starts its listener, which then has nothing to cancel.
    failing = wf.wait_for_event(FailingOnceWaitingListener, str(counter_dir), "never", "broker gone")
    with pytest.raises(wf.WorkflowExecutionError, match="broker gone"):
        both.step(waiting, failing).run(workflow_id="w")
    _wait_until(
        lambda: count_runs(counter_dir, "cancelled-never") == 1, "the waiting listener to be cancelled"
    )
