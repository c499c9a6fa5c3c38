"""Who may change what: the token, CSRF on forms, loopback by default, escaping of stored strings."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import ui_workflows
from conftest import TOKEN
from fastapi.testclient import TestClient

from durably import workflow
from durably_ui import create_app

HOSTILE_ID = "<img src=x onerror=alert(1)><script>alert('id')"
HOSTILE_METADATA = {"owner": "<script>alert('meta')</script>", "<b>key</b>": "<i>value</i>"}
HOSTILE_ERROR = "<script>alert('err')</script><b>bold</b>"


@pytest.fixture
def client(storage: str) -> Iterator[TestClient]:
    with TestClient(create_app(storage, token=TOKEN, executor="local")) as test_client:
        yield test_client


@pytest.fixture
def hostile(storage: str) -> str:
    """A failed workflow whose id, metadata, step name and error are HTML with scripts."""
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.hostile.step(HOSTILE_ERROR).run(workflow_id=HOSTILE_ID, metadata=HOSTILE_METADATA)
    return HOSTILE_ID


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the confirmation form carries a CSRF field"
    return found.group(1)


def test_mutating_api_requests_without_the_token_are_refused(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    answer = client.delete("/api/workflows/ok-1")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert workflow.get_status("ok-1") == workflow.WorkflowStatus.SUCCESSFUL


def test_a_wrong_token_is_refused(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    answer = client.delete("/api/workflows/ok-1", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert answer.status_code == 401
    assert workflow.get_status("ok-1") == workflow.WorkflowStatus.SUCCESSFUL


def test_the_events_endpoint_needs_the_token(client: TestClient) -> None:
    result = ui_workflows.greet.step(workflow.wait_for_event(workflow.ExternalEvent, "approval")).run_async(
        workflow_id="waiting"
    )
    forged = client.post("/api/workflows/waiting/events/approval", json={"name": "Mallory"})
    real = client.post(
        "/api/workflows/waiting/events/approval",
        json={"name": "Ada"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert (forged.status_code, real.status_code) == (401, 200)
    assert result.result(timeout=60) == "hello Ada"


def test_reading_needs_no_token(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    assert client.get("/api/workflows/ok-1").status_code == 200
    assert client.get("/").status_code == 200


def test_every_stored_string_is_escaped_in_pages(client: TestClient, hostile: str) -> None:
    listing = client.get("/").text
    detail = client.get("/workflows/" + hostile.replace("<", "%3C").replace(">", "%3E")).text
    for html in (listing, detail):
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#39;id&#39;)" in html
    assert "&lt;script&gt;alert(&#39;err&#39;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in detail
    assert "&lt;i&gt;value&lt;/i&gt;" in detail and "<i>value</i>" not in detail
    assert "&lt;i&gt;bold step&lt;i&gt;" in detail and "<i>bold step" not in detail


def test_pages_forbid_inline_and_foreign_scripts(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy


def test_a_form_without_the_csrf_field_changes_nothing(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    answer = client.post("/workflows/ok-1/actions/delete", data={"token": TOKEN})
    assert answer.status_code == 403
    assert workflow.get_status("ok-1") == workflow.WorkflowStatus.SUCCESSFUL


def test_a_form_with_a_wrong_token_changes_nothing(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    csrf = csrf_of(client.get("/workflows/ok-1/actions/delete").text)
    answer = client.post("/workflows/ok-1/actions/delete", data={"csrf": csrf, "token": "guess-guess-guess"})
    assert answer.status_code == 401
    assert workflow.get_status("ok-1") == workflow.WorkflowStatus.SUCCESSFUL


def test_a_confirmed_form_with_the_token_acts_and_remembers_the_browser(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    ui_workflows.fetch.step(2).run(workflow_id="ok-2")
    csrf = csrf_of(client.get("/workflows/ok-1/actions/delete").text)
    first = client.post("/workflows/ok-1/actions/delete", data={"csrf": csrf, "token": TOKEN})
    assert first.status_code == 200  # followed the redirect to the list
    second = client.post(
        "/workflows/ok-2/actions/delete", data={"csrf": csrf}
    )  # the session cookie is enough
    assert second.status_code == 200
    assert workflow.list_all() == []


def test_a_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_app("memory://short-token", token="short")
