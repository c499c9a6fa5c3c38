"""Spans from durably's hooks, in this process (local executor), checked with the SDK's in-memory exporter."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import otel_steps
import pytest
from conftest import Recorded
from opentelemetry import trace
from opentelemetry.trace import StatusCode


def _id() -> str:
    return f"w-{uuid.uuid4().hex[:12]}"


def test_a_workflow_run_is_one_span_that_names_the_workflow_and_its_final_status(
    local_workflow: Any, recorded: Recorded
) -> None:
    workflow_id = _id()
    otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=workflow_id)

    span = recorded.one_span("durably.workflow")
    assert span.attributes == {"durably.workflow.id": workflow_id, "durably.workflow.status": "SUCCESSFUL"}
    assert span.status.status_code == StatusCode.UNSET


def test_each_step_is_a_child_span_of_its_workflow_span(local_workflow: Any, recorded: Recorded) -> None:
    workflow_id = _id()
    otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=workflow_id)

    workflow_span = recorded.one_span("durably.workflow")
    steps = recorded.spans("durably.step double")
    assert len(steps) == 2
    for step in steps:
        assert step.parent is not None and step.parent.span_id == workflow_span.context.span_id
        assert step.context.trace_id == workflow_span.context.trace_id
        assert step.attributes is not None
        assert step.attributes["durably.workflow.id"] == workflow_id
        assert step.attributes["durably.step.name"] == "double"
        assert step.attributes["durably.step.attempt"] == 1
        assert step.attributes["durably.step.outcome"] == "finished"
    assert len({step.attributes["durably.step.id"] for step in steps if step.attributes}) == 2


def test_a_retried_step_has_a_span_per_attempt_with_its_error_and_retry_delay(
    local_workflow: Any, recorded: Recorded, tmp_path: Path
) -> None:
    assert otel_steps.flaky.step(str(tmp_path), 2).run(workflow_id=_id()) == "ok"

    attempts = sorted(
        recorded.spans("durably.step flaky"), key=lambda span: span.attributes["durably.step.attempt"]
    )  # type: ignore[index]
    assert [span.attributes["durably.step.attempt"] for span in attempts] == [1, 2, 3]  # type: ignore[index]
    assert [span.attributes["durably.step.outcome"] for span in attempts] == [
        "retried",
        "retried",
        "finished",
    ]  # type: ignore[index]
    for failed in attempts[:2]:
        assert failed.status.status_code == StatusCode.ERROR
        assert failed.attributes["durably.retry.delay"] == pytest.approx(0.01)  # type: ignore[index]
        assert [event.attributes["exception.type"] for event in failed.events] == ["ConnectionError"]  # type: ignore[index]
    assert attempts[2].status.status_code == StatusCode.UNSET
    assert len({span.attributes["durably.step.id"] for span in attempts}) == 1  # type: ignore[index]


def test_a_failed_step_records_its_exception_and_marks_both_spans_as_errors(
    local_workflow: Any, recorded: Recorded
) -> None:
    with pytest.raises(Exception, match="boom"):
        otel_steps.explode.step("boom").run(workflow_id=_id())

    step = recorded.one_span("durably.step explode")
    assert step.status.status_code == StatusCode.ERROR
    assert step.attributes["durably.step.outcome"] == "failed"  # type: ignore[index]
    assert [(event.name, event.attributes["exception.type"]) for event in step.events] == [  # type: ignore[index]
        ("exception", "ValueError")
    ]
    workflow_span = recorded.one_span("durably.workflow")
    assert workflow_span.status.status_code == StatusCode.ERROR
    assert workflow_span.attributes["durably.workflow.status"] == "FAILED"  # type: ignore[index]


def test_spans_the_step_opens_itself_are_children_of_the_step_span(
    local_workflow: Any, recorded: Recorded
) -> None:
    otel_steps.traced_inside.step().run(workflow_id=_id())

    inner = recorded.one_span("inside the step")
    step = recorded.one_span("durably.step traced_inside")
    assert inner.parent is not None and inner.parent.span_id == step.context.span_id


def test_a_workflow_run_inside_an_application_span_is_its_child(
    local_workflow: Any, recorded: Recorded
) -> None:
    with trace.get_tracer("application").start_as_current_span("request") as request:
        otel_steps.double.step(2).run(workflow_id=_id())

    workflow_span = recorded.one_span("durably.workflow")
    assert (
        workflow_span.parent is not None
        and workflow_span.parent.span_id == request.get_span_context().span_id
    )


def test_a_workflow_started_with_run_async_inside_an_application_span_is_its_child(
    local_workflow: Any, recorded: Recorded
) -> None:
    workflow_id = _id()
    with trace.get_tracer("application").start_as_current_span("request") as request:
        pending = otel_steps.double.step(2).run_async(workflow_id=workflow_id)
    assert pending.result() == 4  # driven on a thread of durably's pool, not this one

    workflow_span = recorded.one_span("durably.workflow")
    assert (
        workflow_span.parent is not None
        and workflow_span.parent.span_id == request.get_span_context().span_id
    )
    step = recorded.one_span("durably.step double")
    assert step.context.trace_id == request.get_span_context().trace_id


def test_a_workflow_resumed_inside_an_application_span_is_its_child(
    local_workflow: Any, recorded: Recorded
) -> None:
    workflow_id = _id()
    with pytest.raises(Exception, match="boom"):
        otel_steps.explode.step("boom").run(workflow_id=workflow_id)
    tracer = trace.get_tracer("application")
    with tracer.start_as_current_span("operator") as operator, pytest.raises(Exception, match="boom"):
        local_workflow.resume(workflow_id)  # a FAILED workflow runs its failed step again

    first, resumed = sorted(recorded.spans("durably.workflow"), key=lambda span: span.start_time or 0)
    assert first.parent is None
    assert resumed.parent is not None and resumed.parent.span_id == operator.get_span_context().span_id


def test_a_step_that_returns_a_sub_workflow_ends_its_span_as_continued(
    local_workflow: Any, recorded: Recorded
) -> None:
    assert otel_steps.countdown.step(2).run(workflow_id=_id()) == 0

    outcomes = sorted(
        span.attributes["durably.step.outcome"] for span in recorded.spans("durably.step countdown")
    )  # type: ignore[index]
    assert outcomes == ["continued", "continued", "finished"]


def test_an_event_wait_is_an_event_span_under_its_workflow(local_workflow: Any, recorded: Recorded) -> None:
    local_workflow.sleep(0.01).run(workflow_id=_id())

    wait = recorded.one_span("durably.event sleep")
    workflow_span = recorded.one_span("durably.workflow")
    assert wait.parent is not None and wait.parent.span_id == workflow_span.context.span_id
    assert wait.attributes["durably.step.outcome"] == "finished"  # type: ignore[index]


def test_virtual_actor_calls_are_spans_under_the_caller_span(local_workflow: Any, recorded: Recorded) -> None:
    actor_id = f"a-{uuid.uuid4().hex[:8]}"
    counter = otel_steps.Counter.get_or_create(actor_id)
    recorded.spans()  # the constructor is not a call
    tracer = trace.get_tracer("application")
    with tracer.start_as_current_span("caller") as caller:
        counter.add.run(2)
        counter.value.run()

    add = recorded.one_span("durably.actor_call add")
    value = recorded.one_span("durably.actor_call value")
    assert add.attributes == {
        "durably.actor.id": actor_id,
        "durably.actor.method": "add",
        "durably.actor.readonly": False,
    }
    assert value.attributes["durably.actor.readonly"] is True  # type: ignore[index]
    for call in (add, value):
        assert call.parent is not None and call.parent.span_id == caller.get_span_context().span_id


def test_a_failed_virtual_actor_call_records_the_method_error(
    local_workflow: Any, recorded: Recorded
) -> None:
    counter = otel_steps.Counter.get_or_create(f"a-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Exception, match="negative"):
        counter.add.run(-1)

    call = recorded.one_span("durably.actor_call add")
    assert call.status.status_code == StatusCode.ERROR
    assert [event.attributes["exception.type"] for event in call.events] == ["ValueError"]  # type: ignore[index]
