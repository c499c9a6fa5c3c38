"""Telemetry across the Ray executor: the engine actor, Ray workers and actor hosts each export their
own spans (through the test-only file exporters, see worker_site/), and the trace holds together."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import otel_steps
import pytest
import ray
from conftest import Recorded, WorkerTelemetry, eventually
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan


def _json_id(span_id: int) -> str:
    """A span id as the SDK's JSON of a span writes it (``parent_id``, ``context.span_id``)."""
    return f"0x{trace.format_span_id(span_id)}"


def _json_trace_id(trace_id: int) -> str:
    return f"0x{trace.format_trace_id(trace_id)}"


def _assert_workflow_under(caller: ReadableSpan, spans: list[dict[str, Any]]) -> None:
    """The workflow span (made in the engine actor) is the caller's child, its steps in the same trace."""
    (workflow_span,) = [span for span in spans if span["name"] == "durably.workflow"]
    assert workflow_span["parent_id"] == _json_id(caller.context.span_id)
    assert workflow_span["context"]["trace_id"] == _json_trace_id(caller.context.trace_id)
    assert workflow_span["pid"] != os.getpid()  # made in the engine actor, not in this process
    steps = [span for span in spans if span["name"].startswith("durably.step")]
    assert steps
    for step in steps:
        assert step["parent_id"] == workflow_span["context"]["span_id"]
        assert step["context"]["trace_id"] == workflow_span["context"]["trace_id"]


def test_step_spans_from_ray_workers_are_children_of_the_workflow_span_from_the_engine_actor(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    assert otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=workflow_id) == 4

    spans = worker_telemetry.spans_of(workflow_id, count=3)
    (workflow_span,) = [span for span in spans if span["name"] == "durably.workflow"]
    steps = [span for span in spans if span["name"] == "durably.step double"]
    assert len(steps) == 2
    for step in steps:
        assert step["parent_id"] == workflow_span["context"]["span_id"]
        assert step["context"]["trace_id"] == workflow_span["context"]["trace_id"]
        assert step["pid"] != workflow_span["pid"]  # made in a Ray worker, not in the engine actor
    assert workflow_span["resource"]["attributes"]["service.name"] == "durably-otel-tests"


def test_a_failed_step_on_a_ray_worker_records_its_exception(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    with pytest.raises(Exception, match="boom"):
        otel_steps.explode.step("boom").run(workflow_id=workflow_id)

    spans = worker_telemetry.spans_of(workflow_id, count=2)
    (step,) = [span for span in spans if span["name"] == "durably.step explode"]
    assert step["status"]["status_code"] == "ERROR"
    assert [event["attributes"]["exception.type"] for event in step["events"]] == ["ValueError"]
    (workflow_span,) = [span for span in spans if span["name"] == "durably.workflow"]
    assert workflow_span["attributes"]["durably.workflow.status"] == "FAILED"


def test_an_actor_call_from_a_step_is_a_span_in_the_actor_host_under_the_step_span(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry
) -> None:
    actor_id = f"a-{uuid.uuid4().hex[:8]}"
    counter = otel_steps.Counter.get_or_create(actor_id)
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    assert counter.add.step(5).run(workflow_id=workflow_id) == 5  # a step (in a worker) that calls the actor

    (step,) = [
        span for span in worker_telemetry.spans_of(workflow_id, 2) if span["name"].startswith("durably.step")
    ]

    def call_span() -> list[dict[str, Any]]:
        return [
            span
            for span in worker_telemetry.spans()
            if span["attributes"].get("durably.actor.id") == actor_id
        ]

    (call,) = eventually(call_span, f"the span of the call to {actor_id}")
    assert call["name"] == "durably.actor_call add"
    assert call["parent_id"] == step["context"]["span_id"]
    assert call["context"]["trace_id"] == step["context"]["trace_id"]
    assert call["pid"] != step["pid"]  # applied in the actor's host, another process


def test_metrics_from_ray_workers_reach_their_exporter(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry, tmp_path: Path
) -> None:
    name = {"durably.step.name": "flaky"}
    before = worker_telemetry.counter_total("durably.steps.retried", name)
    otel_steps.flaky.step(str(tmp_path), 1).run(workflow_id=f"w-{uuid.uuid4().hex[:12]}")

    eventually(
        lambda: worker_telemetry.counter_total("durably.steps.retried", name) == before + 1,
        "the retried attempt to be counted",
    )


def test_a_workflow_run_inside_an_application_span_is_its_child_though_the_engine_actor_drives_it(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry, recorded: Recorded
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    with trace.get_tracer("application").start_as_current_span("request"):
        assert otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=workflow_id) == 4

    caller = recorded.one_span("request")  # this process's in-memory exporter
    _assert_workflow_under(caller, worker_telemetry.spans_of(workflow_id, count=3))


def test_a_workflow_started_with_run_async_inside_an_application_span_is_its_child(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry, recorded: Recorded
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    with trace.get_tracer("application").start_as_current_span("request"):
        pending = otel_steps.double.step(3).run_async(workflow_id=workflow_id)
    assert ray.get(pending) == 6  # awaited outside the span: the context went with the start

    _assert_workflow_under(recorded.one_span("request"), worker_telemetry.spans_of(workflow_id, count=2))


def test_a_workflow_run_outside_any_span_starts_a_trace_of_its_own(
    ray_workflow: Any, worker_telemetry: WorkerTelemetry
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    assert otel_steps.double.step(1).run(workflow_id=workflow_id) == 2

    spans = worker_telemetry.spans_of(workflow_id, count=2)
    (workflow_span,) = [span for span in spans if span["name"] == "durably.workflow"]
    assert workflow_span["parent_id"] is None
