"""Ray 2.x's HTTP event tests (test_http_events*.py), ported: only the import and the address change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ui_workflows
from conftest import Dashboard

from durably import workflow
from durably_ui.http_event_provider import HTTPListener


@workflow.step
def join_events(first: Any, second: Any) -> str:
    return f"{first[1]} {second[1]}"


@workflow.step
def after_stock(order: Any, event: Any) -> Any:
    return event[1]


@workflow.step
def dynamic_event() -> Any:
    return workflow.continuation(workflow.wait_for_event(HTTPListener, event_key="event_key"))


def send_ray_style(dashboard: Dashboard, workflow_id: str, key: str, payload: Any) -> int:
    status, _ = dashboard.request(
        "POST", f"/event/send_event/{workflow_id}", {"event_key": key, "event_payload": payload}
    )
    return status


def test_receive_event_by_http(ui: Dashboard) -> None:
    """A statically declared event step receives one message posted over HTTP: (key, payload)."""
    result = workflow.wait_for_event(HTTPListener, event_key="event_key").run_async(workflow_id="static")
    assert send_ray_style(ui, "static", "event_key", "event_message") == 200
    assert result.result(timeout=60) == ("event_key", "event_message")


def test_dynamic_event_by_http(ui: Dashboard) -> None:
    """An event step returned by a step (a continuation) receives it as if declared statically."""
    result = dynamic_event.step().run_async(workflow_id="dynamic")
    assert send_ray_style(ui, "dynamic", "event_key", "event_message_dynamic") == 200
    assert result.result(timeout=60) == ("event_key", "event_message_dynamic")


def test_multiple_events_by_http(ui: Dashboard) -> None:
    """A step that consumes two events waits for both."""
    first = workflow.wait_for_event(HTTPListener, event_key="e1")
    second = workflow.wait_for_event(HTTPListener, event_key="e2")
    result = join_events.step(first, second).run_async(workflow_id="multiple")
    assert send_ray_style(ui, "multiple", "e1", "hello") == 200
    assert send_ray_style(ui, "multiple", "e2", "world") == 200
    assert result.result(timeout=60) == "hello world"


def test_checkpoint_success_by_http_answers_200(ui: Dashboard) -> None:
    """The sender gets 200 once the event is stored; the workflow then finishes with it."""
    result = workflow.wait_for_event(HTTPListener, event_key="event_key").run_async(
        workflow_id="checkpointed"
    )
    assert send_ray_style(ui, "checkpointed", "event_key", "new_event_message") == 200
    assert result.result(timeout=60)[1] == "new_event_message"


def test_an_event_posted_while_nothing_waits_is_kept(ui: Dashboard, tmp_path: Path) -> None:
    """Ray answered 404 until a step waited; here the message is stored until one takes it."""
    marker = tmp_path / "fixed"
    stock = ui_workflows.check_stock.step(str(marker), {"order": 1})
    flow = after_stock.step(stock, workflow.wait_for_event(HTTPListener, event_key="later"))
    with pytest.raises(workflow.WorkflowExecutionError):
        flow.run(workflow_id="early")
    assert send_ray_style(ui, "early", "later", "kept") == 200
    marker.touch()
    assert workflow.resume("early") == "kept"


def test_the_api_endpoint_delivers_to_an_http_listener(ui: Dashboard) -> None:
    result = workflow.wait_for_event(HTTPListener, event_key="approval").run_async(workflow_id="api")
    status, body = ui.request("POST", "/api/workflows/api/events/approval", {"approved": True})
    assert (status, body["delivered"]) == (200, True)
    assert result.result(timeout=60) == ("approval", {"approved": True})


def test_the_listener_is_registered_as_http(ui: Dashboard) -> None:
    result = workflow.wait_for_event("http", event_key="k").run_async(workflow_id="by-name")
    assert send_ray_style(ui, "by-name", "k", 5) == 200
    assert result.result(timeout=60) == ("k", 5)


def test_a_body_without_event_payload_is_404_like_ray(ui: Dashboard) -> None:
    workflow.wait_for_event(HTTPListener, event_key="k").run_async(workflow_id="malformed")
    status, body = ui.request("POST", "/event/send_event/malformed", {"event_key": "k"})
    assert status == 404
    assert "event_payload" in body["error"]["message"]


def test_ray_style_events_need_the_token(ui: Dashboard) -> None:
    workflow.wait_for_event(HTTPListener, event_key="k").run_async(workflow_id="guarded")
    status, _ = ui.request(
        "POST", "/event/send_event/guarded", {"event_key": "k", "event_payload": 1}, token=None
    )
    assert status == 401
