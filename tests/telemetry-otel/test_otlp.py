"""End to end over the wire: the cluster's processes export over OTLP/HTTP to a real receiver on 127.0.0.1."""

from __future__ import annotations

import uuid
from typing import Any

import otel_steps
from conftest import eventually
from servers.otlp_receiver import OtlpReceiver


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {item["key"]: next(iter(item["value"].values())) for item in span.get("attributes", [])}


def test_a_workflow_on_ray_reaches_an_otlp_http_receiver_as_one_trace_with_its_metrics(
    ray_workflow: Any, otlp_receiver: OtlpReceiver
) -> None:
    workflow_id = f"w-{uuid.uuid4().hex[:12]}"
    otel_steps.double.step(otel_steps.double.step(1)).run(workflow_id=workflow_id)

    def spans() -> list[dict[str, Any]] | None:
        found = [
            span
            for span in otlp_receiver.spans()
            if _attributes(span).get("durably.workflow.id") == workflow_id
        ]
        return found if len(found) == 3 else None

    received = eventually(spans, "the workflow's three spans at the receiver")
    (workflow_span,) = [span for span in received if span["name"] == "durably.workflow"]
    steps = [span for span in received if span["name"] == "durably.step double"]
    assert {span["traceId"] for span in received} == {workflow_span["traceId"]}
    assert {step["parentSpanId"] for step in steps} == {workflow_span["spanId"]}
    service = {item["key"]: item["value"] for item in workflow_span["resource"]["attributes"]}["service.name"]
    assert service == {"stringValue": "durably-otel-tests"}
    eventually(
        lambda: {"durably.steps.finished", "durably.step.duration"} <= otlp_receiver.metric_names(),
        "the step metrics at the receiver",
    )
