"""Metrics from durably's hooks, in this process (local executor), read with the SDK's in-memory reader."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import otel_steps
import pytest
from conftest import Recorded


def _by_attributes(points: list[Any]) -> dict[frozenset[tuple[str, Any]], Any]:
    return {frozenset((point.attributes or {}).items()): point for point in points}


def test_finished_steps_are_counted_and_their_durations_recorded_by_step_name(
    local_workflow: Any, recorded: Recorded
) -> None:
    otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=f"w-{uuid.uuid4().hex}")

    finished = _by_attributes(recorded.points("durably.steps.finished"))
    assert finished[frozenset({("durably.step.name", "double")})].value == 2
    durations = _by_attributes(recorded.points("durably.step.duration"))
    histogram = durations[frozenset({("durably.step.name", "double"), ("durably.step.outcome", "finished")})]
    assert histogram.count == 2 and histogram.sum >= 0


def test_retried_attempts_and_failed_steps_are_counted(
    local_workflow: Any, recorded: Recorded, tmp_path: Path
) -> None:
    otel_steps.flaky.step(str(tmp_path), 2).run(workflow_id=f"w-{uuid.uuid4().hex}")
    with pytest.raises(Exception, match="boom"):
        otel_steps.explode.step("boom").run(workflow_id=f"w-{uuid.uuid4().hex}")

    retried = _by_attributes(recorded.points("durably.steps.retried"))
    assert retried[frozenset({("durably.step.name", "flaky")})].value == 2
    failed = _by_attributes(recorded.points("durably.steps.failed"))
    assert failed[frozenset({("durably.step.name", "explode")})].value == 1


def test_finished_workflows_are_counted_by_final_status(local_workflow: Any, recorded: Recorded) -> None:
    otel_steps.double.step(1).run(workflow_id=f"w-{uuid.uuid4().hex}")
    otel_steps.double.step(2).run(workflow_id=f"w-{uuid.uuid4().hex}")
    with pytest.raises(Exception, match="boom"):
        otel_steps.explode.step("boom").run(workflow_id=f"w-{uuid.uuid4().hex}")

    counted = {
        point.attributes["durably.workflow.status"]: point.value
        for point in recorded.points("durably.workflows.finished")
    }
    assert counted == {"SUCCESSFUL": 2, "FAILED": 1}


def test_each_event_wait_records_how_long_it_waited(local_workflow: Any, recorded: Recorded) -> None:
    local_workflow.sleep(0.05).run(workflow_id=f"w-{uuid.uuid4().hex}")

    (wait,) = recorded.points("durably.event.wait_time")  # the wait, not the instant deadline step
    assert wait.attributes == {"durably.step.name": "sleep"}
    assert wait.count == 1 and wait.sum > 0
