"""Ray 1.x's ``workflow.wait``: ready values and remaining futures, checkpointed once, kept across a crash."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run, run_child

import durably
from durably import workflow_v1
from durably._plugins import register_plugin, reset_registry

pytestmark = pytest.mark.workflow


@pytest.fixture
def wf1(storage_url: str, executor: str) -> Any:
    """The 1.x module, initialised on a fresh storage with the executor under test."""
    workflow_v1.init(storage=storage_url, executor=executor)
    return workflow_v1


def _wait_for_file(path: str) -> None:
    while not Path(path).exists():
        time.sleep(0.05)


def test_wait_returns_the_first_values_in_input_order_and_futures_of_the_others(
    wf1: Any, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")

    @wf1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        return value

    @wf1.step
    def quick(value: int) -> int:
        return value

    @wf1.step
    def split(wait_result: Any) -> Any:
        ready, remaining = wait_result
        return ready, [type(future).__name__ for future in remaining]

    waited = wf1.wait([gated.step(1), quick.step(2), quick.step(3)], num_returns=2)
    assert split.step(waited).run() == ([2, 3], ["RemainingStep"])
    Path(gate).touch()  # lets the gated step (still running on its own) end


def test_a_remaining_future_gives_the_one_output_of_the_step_that_was_waited_on(
    wf1: Any, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")

    @wf1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        record_run(tmp_path, "gated")
        return value

    @wf1.step
    def quick(value: int) -> int:
        return value

    @wf1.step
    def pair(ready: list[int], rest: list[int]) -> tuple[list[int], list[int]]:
        return ready, rest

    @wf1.step
    def open_gate_then_consume(wait_result: Any) -> Any:
        ready, remaining = wait_result
        Path(gate).touch()
        return pair.step(ready, remaining)

    @wf1.step
    def composite() -> Any:
        return open_gate_then_consume.step(wf1.wait([quick.step(1), gated.step(2)], num_returns=1))

    assert composite.step().run() == ([1], [2])
    assert count_runs(tmp_path, "gated") == 1


def test_a_wait_ends_at_its_timeout_with_the_values_ready_by_then(wf1: Any, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    @wf1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        return value

    @wf1.step
    def quick(value: int) -> int:
        return value

    @wf1.step
    def ready_part(wait_result: Any) -> list[int]:
        Path(gate).touch()
        return list(wait_result[0])

    waited = wf1.wait([gated.step(1), quick.step(2)], num_returns=2, timeout=0.5)
    assert ready_part.step(waited).run() == [2]


class ClockedExecutor:
    """Local threads, with a wait clock that never ticks: the wait step has not started to run."""

    name = "clocked"
    has_cluster_host = False

    def __init__(self) -> None:
        from durably.executors._local import LocalExecutor

        self._inner = LocalExecutor()

    def wait_clock(self) -> Any:
        return lambda: False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)


class ClockedPlugin:
    @durably.hookimpl
    def durably_executors(self) -> dict[str, Any]:
        return {"clocked": ClockedExecutor}


@pytest.fixture
def clocked_registry() -> Iterator[None]:
    reset_registry()
    register_plugin(ClockedPlugin(), name="clocked")
    yield
    reset_registry()


def test_a_wait_timeout_starts_when_the_executor_says_the_wait_step_runs(
    clocked_registry: None, tmp_path: Path
) -> None:
    # Ray 1.x counted a wait's timeout from when its zero-CPU wait task started on a worker, not
    # from when its inputs were submitted; until the clock ticks, even timeout=0 waits for inputs.
    workflow_v1.init(storage=str(tmp_path / "store"), executor="clocked")
    gate = str(tmp_path / "gate")

    @workflow_v1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        return value

    @workflow_v1.step
    def opens_the_gate(value: int) -> int:
        Path(gate).touch()
        return value

    waited = workflow_v1.wait([gated.step(1), opens_the_gate.step(2)], num_returns=2, timeout=0)
    ready, remaining = waited.run()
    assert (ready, remaining) == ([1, 2], [])


def test_every_consumer_of_a_wait_sees_the_same_split(wf1: Any, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    @wf1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        return value

    @wf1.step
    def quick(value: int) -> int:
        return value

    @wf1.step
    def ready_part(wait_result: Any) -> list[int]:
        return list(wait_result[0])

    @wf1.step
    def both(first: list[int], second: list[int]) -> tuple[list[int], list[int]]:
        Path(gate).touch()
        return first, second

    waited = wf1.wait([gated.step(1), quick.step(2)], num_returns=1)
    assert both.step(ready_part.step(waited), ready_part.step(waited)).run() == ([2], [2])


def test_wait_refuses_what_is_not_a_list_of_step_futures(wf1: Any) -> None:
    @wf1.step
    def quick(value: int) -> int:
        return value

    with pytest.raises(TypeError, match="item 0 is a int"):
        wf1.wait([1, 2])
    with pytest.raises(TypeError, match="a list of step futures"):
        wf1.wait(quick.step(1))
    with pytest.raises(ValueError, match=r"num_returns must be an int from 1 to the number of futures \(1\)"):
        wf1.wait([quick.step(1)], num_returns=2)
    with pytest.raises(ValueError, match="timeout must be seconds"):
        wf1.wait([quick.step(1)], timeout=-1)


def test_a_remaining_future_cannot_start_a_workflow_of_its_own(wf1: Any, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    @wf1.step
    def gated(value: int) -> int:
        _wait_for_file(gate)
        return value

    @wf1.step
    def quick(value: int) -> int:
        return value

    _, remaining = wf1.wait([gated.step(1), quick.step(2)], num_returns=1).run()
    Path(gate).touch()
    with pytest.raises(TypeError, match=r"left running by workflow\.wait"):
        remaining[0].run()


CRASHING_CHILD = """
import cloudpickle, durably_test_helpers, os, time
from pathlib import Path
from durably import workflow_v1 as workflow
from durably_test_helpers import kill_process_tree, record_run

cloudpickle.register_pickle_by_value(durably_test_helpers)
storage, counts = STORAGE, COUNTS
workflow.init(storage=storage, executor="local")
driver_pid = os.getpid()

@workflow.step
def gated(value):
    while not Path(counts, "gate").exists():
        time.sleep(0.05)
    return value

@workflow.step
def quick(value):
    record_run(counts, "quick")
    return value

@workflow.step
def pair(ready, rest):
    return ready, rest

@workflow.step
def crash_once(wait_result):
    if not Path(counts, "crashed").exists():
        Path(counts, "crashed").touch()
        kill_process_tree(driver_pid)
    ready, remaining = wait_result
    return pair.step(ready, remaining)

waited = workflow.wait([gated.step(1), quick.step(2)], num_returns=2, timeout=3)
print(crash_once.step(waited).run(workflow_id="waiting"))
"""


@pytest.mark.needs_persistent_storage
def test_a_resumed_workflow_keeps_the_split_its_wait_checkpointed(storage_url: str, tmp_path: Path) -> None:
    script = CRASHING_CHILD.replace("STORAGE, COUNTS", f"{storage_url!r}, {str(tmp_path)!r}")
    child = run_child(script)
    assert child.returncode == -signal.SIGKILL, child.stderr
    Path(tmp_path, "gate").touch()  # a wait run again now would find both inputs ready
    workflow_v1.init(storage=storage_url, executor="local")
    import ray

    handle = workflow_v1.resume("waiting")
    result = handle.result() if hasattr(handle, "result") else ray.get(handle)
    assert result == ([2], [1])
    assert count_runs(tmp_path, "quick") == 1
