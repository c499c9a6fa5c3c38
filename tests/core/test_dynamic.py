"""Dynamic workflows: steps that return steps (continuations) — nesting, loops, recursion, resume."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run, run_child

from durably import workflow

pytestmark = pytest.mark.workflow


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step
def fib(n: int) -> Any:
    if n <= 1:
        return n
    return add.step(fib.step(n - 1), fib.step(n - 2))


def test_recursive_fibonacci(wf: Any) -> None:
    assert fib.step(10).run() == 55


@workflow.step
def loop(index: int, limit: int) -> Any:
    if index >= limit:
        return index
    return loop.step(index + 1, limit)


@pytest.mark.storage_on_ray
def test_tail_recursive_loop(wf: Any) -> None:
    assert loop.step(0, 300).run(workflow_id="loop") == 300


@workflow.step
def plus_one(value: int) -> int:
    return value + 1


@workflow.step
def nested(depth: int) -> Any:
    if depth == 0:
        return plus_one.step(0)
    return plus_one.step(nested.step(depth - 1))


def test_continuation_output_feeds_later_static_steps(wf: Any) -> None:
    assert add.step(nested.step(3), plus_one.step(10)).run() == 4 + 11


@workflow.step(max_retries=0)
def explode(message: str) -> int:
    raise ValueError(message)


@workflow.step(catch_exceptions=True)
def guarded(depth: int) -> Any:
    if depth == 0:
        return explode.step("deep inside")
    return plus_one.step(plus_one.step(explode.step("deep inside")))


def test_catch_exceptions_on_outer_step_catches_failure_inside_its_continuation(wf: Any) -> None:
    result, error = guarded.step(1).run()
    assert result is None
    assert isinstance(error, ValueError)
    assert "deep inside" in str(error)


@workflow.step(catch_exceptions=True)
def guarded_success() -> Any:
    return plus_one.step(plus_one.step(1))


def test_catch_exceptions_wraps_a_successful_continuation(wf: Any) -> None:
    assert guarded_success.step().run() == (3, None)


@workflow.step
def uses_caught(pair: Any) -> str:
    value, error = pair
    return f"{value}/{type(error).__name__}"


def test_consumers_of_a_catching_step_wait_for_its_resolution(wf: Any) -> None:
    assert uses_caught.step(guarded.step(0)).run() == "None/ValueError"


@workflow.step
def named_dynamic(index: int) -> Any:
    if index == 3:
        return plus_one.options(name="the_third").step(100)
    return named_dynamic.step(index + 1)


def test_named_dynamic_steps_can_be_read_once_they_ran(wf: Any) -> None:
    assert named_dynamic.step(0).run(workflow_id="named") == 101
    assert wf.get_output("named", name="the_third") == 101


@workflow.step
def countdown(index: int) -> Any:
    if index == 0:
        return 42
    return countdown.options(name=f"left_{index - 1}").step(index - 1)


def test_a_named_dynamic_step_that_returned_a_continuation_reads_as_its_final_value(wf: Any) -> None:
    countdown.options(name="left_3").step(3).run(workflow_id="countdown")
    assert [wf.get_output("countdown", name=f"left_{index}") for index in range(4)] == [42] * 4


def test_output_of_a_step_that_returned_a_continuation_is_its_final_value(wf: Any) -> None:
    nested.step(2).run(workflow_id="resolved")
    assert wf.get_output("resolved", name="nested") == 3


LOOP_CHILD = """
import os, signal, sys
from pathlib import Path
import cloudpickle, durably_test_helpers
from durably import workflow
from durably_test_helpers import record_run
cloudpickle.register_pickle_by_value(durably_test_helpers)

storage, counts = {storage!r}, {counts!r}
workflow.init(storage=storage, executor="local")

@workflow.step
def leaf(n):
    record_run(counts, f"leaf{{n}}")
    if n == 7 and not Path(counts, "crashed").exists():
        Path(counts, "crashed").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return n

@workflow.step
def combine(a, b):
    return a + b

@workflow.step
def tree(lo, hi):
    record_run(counts, f"tree{{lo}}-{{hi}}")
    if hi - lo == 1:
        return leaf.step(lo)
    mid = (lo + hi) // 2
    return combine.step(tree.step(lo, mid), tree.step(mid, hi))

print(tree.step(0, 16).run(workflow_id="tree"))
"""


@pytest.mark.needs_persistent_storage
def test_crash_inside_nested_continuations_reruns_only_unfinished_steps(
    storage_url: str, counter_dir: Path
) -> None:
    child = run_child(LOOP_CHILD.format(storage=storage_url, counts=str(counter_dir)))
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage_url, executor="local")
    from durably._api import storage

    def runs(prefix: str) -> int:
        return sum(
            count_runs(counter_dir, path.name)
            for path in counter_dir.iterdir()
            if path.name.startswith(prefix)
        )

    def checkpointed(folder: str, name: str) -> int:
        return len(
            [
                key
                for key in storage().list(f"workflows/tree/{folder}")
                if key.rsplit("/", 1)[1].startswith(name)
            ]
        )

    tree_runs_before, leaf_runs_before = runs("tree"), runs("leaf")
    trees_done, leaves_done = checkpointed("continuations", "tree"), checkpointed("steps", "leaf")
    assert 0 < trees_done <= 31
    assert leaves_done < 16  # the crash interrupted the tree
    assert workflow.resume("tree") == sum(range(16))
    # Each of the 31 tree steps and 16 leaves that was not checkpointed at the crash runs once more; no other.
    assert runs("tree") == tree_runs_before + (31 - trees_done)
    assert runs("leaf") == leaf_runs_before + (16 - leaves_done)
    assert count_runs(counter_dir, "leaf7") == 2


def test_recorded_run_counts_for_a_dynamic_graph(wf: Any, counter_dir: Path) -> None:
    @workflow.step
    def counted_fib(n: int, folder: str) -> Any:
        record_run(folder, f"fib{n}")
        if n <= 1:
            return n
        return add.step(counted_fib.step(n - 1, folder), counted_fib.step(n - 2, folder))

    assert counted_fib.step(6, str(counter_dir)).run() == 8
    assert count_runs(counter_dir, "fib6") == 1
    assert count_runs(counter_dir, "fib1") == 8


@workflow.step(max_retries=0)
def gated_loop(index: int, limit: int, gate: str) -> Any:
    if index == limit - 5 and not Path(gate).exists():
        raise RuntimeError("gate closed")
    if index >= limit:
        return index
    return gated_loop.step(index + 1, limit, gate)


class CountingStorage:
    """A real file storage that counts reads, to see how much a resume reads."""

    reads = 0

    def __init__(self, url: str) -> None:
        from durably.storage import FileStorage

        self._inner = FileStorage("file://" + url.split("://", 1)[1])
        self.url = url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get(self, key: str) -> bytes:
        CountingStorage.reads += 1
        return self._inner.get(key)


class CountingPlugin:
    @staticmethod
    @__import__("durably").hookimpl
    def durably_storage_backends() -> Any:
        return {"counting": CountingStorage}


def test_long_loop_resumes_from_the_stored_tail_without_walking_the_chain(tmp_path: Path) -> None:
    from durably._plugins import register_plugin, reset_registry

    reset_registry()
    register_plugin(CountingPlugin, name="counting-storage")
    try:
        workflow.init(storage=f"counting://{tmp_path / 'store'}", executor="local")
        gate = str(tmp_path / "gate")
        limit = 2_000
        with pytest.raises(workflow.WorkflowExecutionError, match="gate closed"):
            gated_loop.step(0, limit, gate).run(workflow_id="long-loop")
        Path(gate).touch()
        CountingStorage.reads = 0
        assert workflow.resume("long-loop") == limit
        assert CountingStorage.reads < limit // 5
    finally:
        reset_registry()


def _triple(value: int) -> int:
    return 3 * value


@workflow.step
def hands_over_to_a_ray_dag(value: int) -> Any:
    import ray

    return workflow.continuation(ray.remote(_triple).bind(value))


def test_a_step_may_continue_with_a_ray_dag_through_workflow_continuation(wf: Any) -> None:
    assert plus_one.step(hands_over_to_a_ray_dag.step(5)).run(workflow_id="dag-continuation") == 16
    assert wf.get_output("dag-continuation", name="hands_over_to_a_ray_dag") == 15
