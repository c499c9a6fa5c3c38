"""Graphs of any depth: 10,000-step chains and fan-outs build, store, run and resume without recursion."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from durably import workflow

# Slow: the backends session leaves these to the file-storage run (CI time), see noxfile.py.
pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SIZE = 10_000


@workflow.step
def increment(value: int) -> int:
    return value + 1


@workflow.step
def total(values: list[int]) -> int:
    return sum(values)


@workflow.step(max_retries=0)
def fail_at(value: int, limit: int, gate: str) -> int:
    if value == limit and not Path(gate).exists():
        raise RuntimeError(f"stop at {limit}")
    return value + 1


def _chain(size: int) -> Any:
    flow = increment.step(0)
    for _ in range(size - 1):
        flow = increment.step(flow)
    return flow


def test_chain_deeper_than_the_recursion_limit_runs(wf: Any) -> None:
    assert sys.getrecursionlimit() < SIZE
    assert _chain(SIZE).run(workflow_id="chain") == SIZE
    assert wf.get_output("chain") == SIZE


def test_fanout_of_many_steps_runs(wf: Any) -> None:
    assert total.step([increment.step(index) for index in range(SIZE)]).run() == sum(range(1, SIZE + 1))


def test_deep_chain_resumes_from_where_it_failed(storage_url: str, tmp_path: Path) -> None:
    # On the local executor only: resuming from the stored steps is the engine's work, the same on
    # every executor, and a 10,000-step chain on Ray is run by the test above (this one on Ray cost
    # CI 80 s more for no other path).
    workflow.init(storage=storage_url, executor="local")
    gate = str(tmp_path / "gate")
    flow = fail_at.step(0, SIZE // 2, gate)
    for _ in range(SIZE - 1):
        flow = fail_at.step(flow, SIZE // 2, gate)
    with pytest.raises(workflow.WorkflowExecutionError, match=f"stop at {SIZE // 2}"):
        flow.run(workflow_id="deep")
    from durably._api import storage

    assert len(list(storage().list("workflows/deep/steps"))) == SIZE // 2
    Path(gate).touch()
    assert workflow.resume("deep") == SIZE
    assert len(list(storage().list("workflows/deep/steps"))) == SIZE
