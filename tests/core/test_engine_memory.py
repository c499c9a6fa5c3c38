"""What the engine keeps once steps finish: the graph it was given, and nothing per finished step beyond it.

A loop's finished iterations, a recursion's finished calls and the executor's handles of steps
that are done are not "the graph": a workflow of 100,000 dynamic steps must not hold 100,000 of
them. Counted inside the engine at the moment its output is done (every step finished, nothing
in flight), on the local executor, whose engine runs in this process. Counts, not timings.
"""

from __future__ import annotations

import concurrent.futures
import gc
import time
from pathlib import Path
from typing import Any

import pytest

from durably import workflow
from durably._engine import WorkflowEngine

pytestmark = pytest.mark.workflow

STEPS = 2_000
#: Nodes an engine may still hold at the end of a dynamic workflow of STEPS steps: its output, the
#: last frames on the way to the value, and nothing that grows with STEPS.
FEW = 20
#: Futures that may still be alive then, whatever the size: the thread pool's own futures of the
#: last steps and the step threads' last frames (a few dozen seen); a leak is thousands.
FEW_FUTURES = 200


@workflow.step
def increment(value: int) -> int:
    return value + 1


@workflow.step
def loop(index: int, limit: int) -> Any:
    if index >= limit:
        return index
    return loop.step(index + 1, limit)


@workflow.step
def loop_with_work(index: int, limit: int) -> Any:
    """An iteration that runs a step of its own and hands its result to the next iteration."""
    if index >= limit:
        return index
    return loop_with_work.step(increment.step(index), limit)


@workflow.step
def countdown(remaining: int) -> Any:
    """A sub-workflow that returns a continuation of its own before its value."""
    return remaining if remaining == 0 else countdown.step(remaining - 1)


@workflow.step
def loop_over_subworkflows(index: int, limit: int, _: int) -> Any:
    if index >= limit:
        return index
    return loop_over_subworkflows.step(index + 1, limit, countdown.step(2))


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step
def leaves(count: int) -> Any:
    """A recursion: ``count`` leaves of 1, split in halves and added up (2·count - 1 calls)."""
    half = count // 2
    return 1 if count == 1 else add.step(leaves.step(half), leaves.step(count - half))


def _futures() -> int:
    gc.collect()
    return sum(isinstance(item, concurrent.futures.Future) for item in gc.get_objects())


def _kept_by_steps_in_flight(seen: dict[str, int]) -> int:
    """Futures the engine may rightly hold at the end: the output can be done before the outcomes
    of steps that finished earlier were taken in (a fast storage); two futures each, and the
    output of the step before, kept until that outcome releases it."""
    return 3 * seen["in_flight"]


@pytest.fixture
def at_the_end(monkeypatch: pytest.MonkeyPatch, storage_url: str) -> dict[str, int]:
    """What the engine holds when its output is done: its nodes, and the executor's live futures."""
    workflow.init(storage=storage_url, executor="local")
    seen: dict[str, int] = {"futures_before": _futures()}
    value_of = WorkflowEngine._value_of

    def counting(engine: WorkflowEngine, node: Any) -> Any:
        seen["nodes"] = len(engine.nodes)
        seen["in_flight"] = len(engine.inflight)
        seen["futures"] = _futures() - seen["futures_before"]
        return value_of(engine, node)

    monkeypatch.setattr(WorkflowEngine, "_value_of", counting)
    return seen


def test_a_chain_keeps_no_handles_of_finished_steps(at_the_end: dict[str, int]) -> None:
    flow = increment.step(0)
    for _ in range(STEPS - 1):
        flow = increment.step(flow)
    assert flow.run() == STEPS
    assert at_the_end["nodes"] == STEPS  # the graph it was given
    # Each submitted step has two futures (value, outcome); none of a finished step is kept alive.
    assert at_the_end["futures"] <= _kept_by_steps_in_flight(at_the_end) + FEW_FUTURES, at_the_end


def test_a_fanout_keeps_no_handles_of_finished_steps(at_the_end: dict[str, int]) -> None:
    @workflow.step
    def total(*values: int) -> int:
        return sum(values)

    assert total.step(*[increment.step(index) for index in range(STEPS)]).run() == sum(range(1, STEPS + 1))
    assert at_the_end["futures"] <= _kept_by_steps_in_flight(at_the_end) + FEW_FUTURES, at_the_end


@pytest.mark.parametrize(
    ("flow", "value"),
    [
        pytest.param(lambda: loop.step(0, STEPS), STEPS, id="loop"),
        pytest.param(lambda: loop_with_work.step(0, STEPS), STEPS, id="loop-with-a-step-per-iteration"),
        pytest.param(
            lambda: loop_over_subworkflows.step(0, STEPS // 4, 0), STEPS // 4, id="loop-of-subworkflows"
        ),
        pytest.param(lambda: leaves.step(STEPS // 2), STEPS // 2, id="recursion"),
    ],
)
def test_a_dynamic_workflow_keeps_no_finished_steps(
    at_the_end: dict[str, int], flow: Any, value: int
) -> None:
    assert flow().run() == value
    assert at_the_end["nodes"] <= at_the_end["in_flight"] + FEW, at_the_end
    assert at_the_end["futures"] <= _kept_by_steps_in_flight(at_the_end) + FEW_FUTURES, at_the_end


@workflow.step(max_retries=0)
def failing_loop(index: int, limit: int) -> Any:
    if index >= limit:
        raise ValueError(f"failed at iteration {index}")
    return failing_loop.step(increment.step(index), limit)


@workflow.step(catch_exceptions=True)
def guarded_loop(limit: int) -> Any:
    return failing_loop.step(0, limit)


@workflow.step
def loop_into_a_guarded_loop(index: int, limit: int) -> Any:
    if index >= limit:
        return guarded_loop.step(limit)
    return loop_into_a_guarded_loop.step(increment.step(index), limit)


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param(lambda: guarded_loop.step(300), id="loop-inside-a-catching-step"),
        pytest.param(lambda: loop_into_a_guarded_loop.step(0, 300), id="catching-step-after-a-loop"),
    ],
)
def test_a_failure_deep_in_a_loop_is_still_caught(wf: Any, flow: Any) -> None:
    # The failure finds its catcher through the iterations that led to it, which stay known
    # while their steps are forgotten; before the catching step, whole iterations are.
    value, error = flow().run()
    assert value is None
    assert isinstance(error, ValueError)
    assert "failed at iteration 300" in str(error)


@workflow.step(max_retries=0)
def fail_now() -> int:
    raise ValueError("the first failure")


@workflow.step(max_retries=0)
def fail_once_flagged(flag: str, mark: str) -> int:
    deadline = time.monotonic() + 60
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(mark).touch()
    raise ValueError("the second failure")


@workflow.step
def slow_branch(flag: str, mark: str) -> Any:
    return increment.step(fail_once_flagged.step(flag, mark))


@workflow.step
def first(a: int, b: int) -> int:
    return a


@workflow.step(catch_exceptions=True)
def catching(flag: str, mark: str) -> Any:
    return first.step(slow_branch.step(flag, mark), fail_now.step())


@workflow.step
def after_catching(pair: Any, flag: str) -> str:
    Path(flag).touch()  # the catching step's consumer finished: now the other branch fails
    return type(pair[1]).__name__


@workflow.step
def once_marked(name: str, mark: str) -> str:
    deadline = time.monotonic() + 60
    while not Path(mark).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # let the engine take in the second failure first
    return name


@workflow.step
def catching_in_a_subworkflow(flag: str, mark: str) -> Any:
    return once_marked.step(after_catching.step(catching.step(flag, mark), flag), mark)


def test_a_catching_step_stays_known_while_its_other_branches_run(wf: Any, tmp_path: Path) -> None:
    # A failure resolved the catching step and its consumer finished: it may not be forgotten
    # yet, as a branch of its sub-workflow still runs, and that branch's failure is caught too.
    flow = catching_in_a_subworkflow.step(str(tmp_path / "flag"), str(tmp_path / "mark"))
    assert flow.run() == "ValueError"


def test_the_ray_executor_keeps_one_configured_task_for_equal_options() -> None:
    # Each step of a loop has its own options object (unpickled with its continuation): keyed by
    # identity, the executor kept a configured remote function per finished iteration.
    from durably._options import build_options
    from durably.executors._ray import CONFIGURED_MAX, RayExecutor

    executor = RayExecutor()
    remotes = {id(executor._remote_for(build_options(None, max_retries=2), None, None)) for _ in range(1_000)}
    assert len(remotes) == 1
    assert len(executor._configured) == 1
    # Options that are not plain values (a scheduling strategy object, equal only to itself, or
    # one that cannot be hashed at all) are keyed by identity, and the cache stays bounded.
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    class Unhashable(NodeAffinitySchedulingStrategy):
        __hash__ = None  # type: ignore[assignment]

    for strategy in (NodeAffinitySchedulingStrategy, Unhashable):
        for _ in range(CONFIGURED_MAX * 2):
            options = build_options(None, scheduling_strategy=strategy(node_id="ab" * 28, soft=True))
            assert executor._remote_for(options, None, None) is executor._remote_for(options, None, None)
        assert len(executor._configured) <= CONFIGURED_MAX
