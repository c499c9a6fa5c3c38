"""Every recorded fact is written once: the first record of a step, a continuation or a result wins."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from durably import workflow
from durably._graph import flatten
from durably._protocol import DONE, Continuation, StepTask
from durably._runner import execute_step
from durably._store import WorkflowStore, open_workflow_store

_calls = itertools.count()


@workflow.step
def fresh_number() -> int:
    return next(_calls)


@workflow.step
def echo(value: int) -> int:
    return value


@workflow.step
def returns_sub_workflow() -> Any:
    return echo.step(next(_calls))


def _task(tmp_path: Path, step: Any) -> tuple[WorkflowStore, StepTask]:
    url = tmp_path.as_uri()
    graph = flatten(step)
    store = open_workflow_store(url, "wf")
    store.create(graph, {})
    spec = next(spec for spec in graph.steps if spec.step_id == graph.output)
    return store, StepTask(url, "wf", spec)


def test_a_second_run_of_a_step_returns_the_output_the_first_recorded(tmp_path: Path) -> None:
    store, task = _task(tmp_path, fresh_number.step())
    first, _ = execute_step(task)
    second, outcome = execute_step(task)
    assert second == first and outcome is DONE
    assert store.load_step_output(task.spec.step_id) == first


def test_a_retried_step_with_a_checkpoint_is_not_called_again(tmp_path: Path) -> None:
    _, task = _task(tmp_path, fresh_number.step())
    first, _ = execute_step(task)
    calls_before = next(_calls)
    value, outcome = execute_step(task, retried=True)
    assert (value, outcome) == (first, DONE)
    assert next(_calls) == calls_before + 1  # the step function did not run in between


def test_a_second_continuation_of_a_step_yields_the_first_recorded_graph(tmp_path: Path) -> None:
    store, task = _task(tmp_path, returns_sub_workflow.step())
    _, first = execute_step(task)
    _, second = execute_step(task)
    assert isinstance(first, Continuation) and isinstance(second, Continuation)
    stored = store.load_continuation(task.spec.step_id)
    assert [s.encoded_args for s in second.graph.steps] == [s.encoded_args for s in stored.steps]
    assert [s.encoded_args for s in first.graph.steps] == [s.encoded_args for s in stored.steps]


def test_the_first_recorded_result_of_a_workflow_stays(tmp_path: Path) -> None:
    store, _ = _task(tmp_path, fresh_number.step())
    assert store.save_result_pointer("a") is True
    assert store.save_result_pointer("b") is False
    assert store.result_step_id() == "a"
