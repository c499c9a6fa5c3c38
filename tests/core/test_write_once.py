"""Every recorded fact is written once: the first record of a step, a continuation or a result wins."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run

from durably import workflow
from durably._graph import flatten
from durably._protocol import DONE, Continuation, StepTask
from durably._runner import execute_step
from durably._store import WorkflowStore, open_workflow_store
from durably.executors import _local as local_executor


@workflow.step
def echo(value: int) -> int:
    return value


@workflow.step
def counted(folder: str) -> int:
    record_run(folder, "counted")
    return count_runs(Path(folder), "counted")


@workflow.step(max_retries=0)
def opens_at(gate: str) -> int:
    if not Path(gate).exists():
        raise RuntimeError("closed")
    return 7


@workflow.step
def returns_sub_workflow(folder: str) -> Any:
    record_run(folder, "sub")
    return echo.step(count_runs(Path(folder), "sub"))


def _task(tmp_path: Path, step: Any) -> tuple[WorkflowStore, StepTask]:
    url = tmp_path.as_uri()
    graph = flatten(step)
    store = open_workflow_store(url, "wf")
    store.create(graph, {})
    spec = next(spec for spec in graph.steps if spec.step_id == graph.output)
    return store, StepTask(url, "wf", spec)


def test_a_second_run_of_a_step_returns_the_output_the_first_recorded(tmp_path: Path) -> None:
    store, task = _task(tmp_path, counted.step(str(tmp_path)))
    first, _ = execute_step(task)
    second, outcome = execute_step(task)
    assert second == first and outcome is DONE
    assert store.load_step_output(task.spec.step_id) == first


def test_a_retried_step_with_a_checkpoint_is_not_called_again(tmp_path: Path) -> None:
    # The step function is stored by value, so it counts its calls in a file, not in this module.
    _, task = _task(tmp_path, counted.step(str(tmp_path)))
    first, _ = execute_step(task)
    value, outcome = execute_step(task, retried=True)
    assert (value, outcome) == (first, DONE)
    assert count_runs(tmp_path, "counted") == 1


def test_a_step_of_a_run_that_took_the_workflow_over_is_not_called_when_recorded(tmp_path: Path) -> None:
    # A driver paused past its lease may record a step after its successor's engine started.
    _, task = _task(tmp_path, counted.step(str(tmp_path)))
    first, _ = execute_step(task)
    value, outcome = execute_step(dataclasses.replace(task, look_first=True))
    assert (value, outcome) == (first, DONE)
    assert count_runs(tmp_path, "counted") == 1


def test_only_the_first_driver_of_a_workflow_skips_looking_for_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[tuple[str, bool]] = []
    real = local_executor.execute_step

    def recording(task: StepTask, *inputs: Any, **kwargs: Any) -> Any:
        looked.append((task.spec.name, task.look_first))
        return real(task, *inputs, **kwargs)

    monkeypatch.setattr(local_executor, "execute_step", recording)
    workflow.init(storage=str(tmp_path / "storage"), executor="local")
    gate = tmp_path / "open"
    with pytest.raises(workflow.WorkflowExecutionError):
        echo.step(opens_at.step(str(gate))).run(workflow_id="taken-over")
    assert looked and not any(look for _, look in looked)
    looked.clear()
    gate.touch()
    assert workflow.resume("taken-over") == 7
    assert looked and all(look for _, look in looked)


def test_a_second_continuation_of_a_step_yields_the_first_recorded_graph(tmp_path: Path) -> None:
    store, task = _task(tmp_path, returns_sub_workflow.step(str(tmp_path)))
    _, first = execute_step(task)
    _, second = execute_step(task)
    assert isinstance(first, Continuation) and isinstance(second, Continuation)
    stored = store.load_continuation(task.spec.step_id)
    assert [s.encoded_args for s in second.graph.steps] == [s.encoded_args for s in stored.steps]
    assert [s.encoded_args for s in first.graph.steps] == [s.encoded_args for s in stored.steps]


def test_the_first_recorded_result_of_a_workflow_stays(tmp_path: Path) -> None:
    store, _ = _task(tmp_path, counted.step(str(tmp_path)))
    assert store.save_result_pointer("a") is True
    assert store.save_result_pointer("b") is False
    assert store.result_step_id() == "a"
