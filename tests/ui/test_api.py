"""The JSON API under /api: what each route answers for stored workflows (served in-process)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import ui_workflows
from conftest import TOKEN, wait_for_status
from fastapi.testclient import TestClient

from durably import workflow
from durably._resolve import open_storage
from durably._store import status_hint_key
from durably.codecs import LEGACY_ENV, SIGNING_KEY_ENV
from durably_ui import create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(storage: str) -> Iterator[TestClient]:
    with TestClient(create_app(storage, token=TOKEN, executor="local")) as test_client:
        yield test_client


def failed_order(tmp_path: Path, workflow_id: str = "order-failed") -> str:
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.order_workflow(str(tmp_path / "missing-marker")).run(workflow_id=workflow_id)
    return workflow_id


def test_list_filters_by_status(client: TestClient, tmp_path: Path) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    failed_order(tmp_path)
    answer = client.get("/api/workflows", params={"status": "FAILED"}).json()
    assert [item["workflow_id"] for item in answer["items"]] == ["order-failed"]
    assert answer["items"][0]["status"] == "FAILED"


def test_list_filters_by_id_prefix_and_pages(client: TestClient) -> None:
    for number in range(5):
        ui_workflows.fetch.step(number).run(workflow_id=f"batch-{number}")
    ui_workflows.fetch.step(9).run(workflow_id="other")
    first = client.get("/api/workflows", params={"prefix": "batch-", "limit": 3}).json()
    second = client.get(
        "/api/workflows", params={"prefix": "batch-", "limit": 3, "after": first["next_cursor"]}
    ).json()
    seen = [item["workflow_id"] for item in first["items"] + second["items"]]
    assert sorted(seen) == [f"batch-{number}" for number in range(5)]
    assert second["next_cursor"] is None


def test_counts_by_status(client: TestClient, tmp_path: Path) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    ui_workflows.fetch.step(2).run(workflow_id="ok-2")
    failed_order(tmp_path)
    counts = client.get("/api/counts").json()
    assert (counts["SUCCESSFUL"], counts["FAILED"]) == (2, 1)


def test_counts_and_filter_come_from_the_status_index_and_ignore_a_stale_hint(
    client: TestClient, storage: str, tmp_path: Path
) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    failed_order(tmp_path)
    # A status change cut short: a hint says FAILED, the workflow's own record says SUCCESSFUL.
    open_storage(storage).put(status_hint_key("FAILED", "ok-1"), b"")
    counts = client.get("/api/counts").json()
    assert (counts["SUCCESSFUL"], counts["FAILED"]) == (1, 1)
    answer = client.get("/api/workflows", params={"status": "FAILED"}).json()
    assert [item["workflow_id"] for item in answer["items"]] == ["order-failed"]


def test_show_has_the_error_and_traceback_of_a_failed_workflow(client: TestClient, tmp_path: Path) -> None:
    failed_order(tmp_path)
    detail = client.get("/api/workflows/order-failed").json()
    assert detail["summary"]["status"] == "FAILED"
    assert detail["error"]["type"] == "RuntimeError"
    assert "warehouse offline" in detail["error"]["message"]
    assert "check_stock" in detail["error"]["traceback"]


def test_steps_have_their_status_and_edges(client: TestClient, tmp_path: Path) -> None:
    failed_order(tmp_path)
    steps = {
        step["name"].rsplit(".", 1)[-1]: step
        for step in client.get("/api/workflows/order-failed/steps").json()
    }
    assert steps["fetch"]["status"] == "SUCCESSFUL"
    assert steps["check_stock"]["status"] == "FAILED"
    assert steps["fetch"]["step_id"] in steps["check_stock"]["depends_on"]


def test_a_failed_step_has_its_start_duration_and_error(client: TestClient, tmp_path: Path) -> None:
    failed_order(tmp_path)
    (failed,) = [step for step in client.get("/api/workflows/order-failed/steps").json() if step["error"]]
    assert failed["name"].endswith("check_stock") and failed["status"] == "FAILED"
    assert failed["start"] is not None and failed["duration"] is not None
    assert "warehouse offline" in failed["error"]["message"]


def test_the_timeline_draws_a_failed_step_with_its_error(client: TestClient, tmp_path: Path) -> None:
    failed_order(tmp_path)
    page = client.get("/workflows/order-failed").text
    timeline = page[
        page.index('<svg class="timeline"') : page.index("</svg>", page.index('<svg class="timeline"'))
    ]
    bar = timeline[timeline.index('<g class="bar s-FAILED">') :]
    bar = bar[: bar.index("</g>")]
    assert "check_stock" in bar and "failed after" in bar and "RuntimeError: warehouse offline" in bar
    assert "<rect " in bar


def test_steps_include_the_continuation_a_step_returned(client: TestClient) -> None:
    ui_workflows.plan.step(4).run(workflow_id="planned")
    (plan,) = [step for step in client.get("/api/workflows/planned/steps").json() if "plan" in step["name"]]
    assert {child["name"].rsplit(".", 1)[-1] for child in plan["children"]} >= {"ship"}


def test_unknown_workflow_is_404_naming_it(client: TestClient) -> None:
    answer = client.get("/api/workflows/nope")
    assert answer.status_code == 404
    assert "nope" in answer.json()["error"]["message"]


def test_output_preview_is_refused_without_show_outputs(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    answer = client.get("/api/workflows/ok-1/output")
    assert answer.status_code == 403
    assert "--show-outputs" in answer.json()["error"]["message"]


def test_output_preview_with_show_outputs_is_bounded(storage: str) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    with TestClient(create_app(storage, token=TOKEN, executor="local", show_outputs=True)) as client:
        full = client.get("/api/workflows/ok-1/output").json()["preview"]
        cut = client.get("/api/workflows/ok-1/output", params={"max_chars": 5}).json()["preview"]
    assert "'items': 3" in full
    assert len(cut) <= 5 + 20  # the preview says it was cut, in a few more characters


@pytest.fixture
def signed_storage(storage: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The storage, with this process signing and checking every record (the ``sign`` codec)."""
    secret = base64.b64encode(hashlib.sha256(b"ui test signing key").digest()).decode()
    monkeypatch.setenv(SIGNING_KEY_ENV, f"ui-1:{secret}")
    workflow.init(storage=storage, executor="local")
    return storage


def test_output_preview_is_allowed_on_a_signed_store(signed_storage: str) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    with TestClient(create_app(signed_storage, token=TOKEN, executor="local")) as client:
        answer = client.get("/api/workflows/ok-1/output")
        page = client.get("/workflows/ok-1").text
    assert answer.status_code == 200, answer.text
    assert "'items': 3" in answer.json()["preview"]
    assert 'class="preview"' in page  # the step table offers its output


def test_output_preview_is_refused_while_unsigned_legacy_records_are_accepted(
    signed_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    monkeypatch.setenv(LEGACY_ENV, "1")  # a planted unsigned record would be unpickled
    with TestClient(create_app(signed_storage, token=TOKEN, executor="local")) as client:
        answer = client.get("/api/workflows/ok-1/output")
    assert answer.status_code == 403


def test_event_endpoint_delivers_the_json_body_like_send_event(client: TestClient) -> None:
    waiting = ui_workflows.greet.step(workflow.wait_for_event(workflow.ExternalEvent, "approval"))
    result = waiting.run_async(workflow_id="waiting")
    answer = client.post("/api/workflows/waiting/events/approval", json={"name": "Ada"}, headers=AUTH)
    assert answer.status_code == 200
    assert result.result(timeout=60) == "hello Ada"


def test_event_to_a_finished_workflow_is_409(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    answer = client.post("/api/workflows/ok-1/events/approval", json=1, headers=AUTH)
    assert answer.status_code == 409
    assert "finished" in answer.json()["error"]["message"]


def test_resume_runs_a_failed_workflow_to_success(client: TestClient, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.order_workflow(str(marker)).run(workflow_id="order")
    marker.touch()
    assert client.post("/api/workflows/order/resume", headers=AUTH).status_code == 200
    assert wait_for_status("order", workflow.WorkflowStatus.SUCCESSFUL) == workflow.WorkflowStatus.SUCCESSFUL
    assert workflow.get_output("order") == "order 7 shipped, 30 EUR"


def test_cancel_stops_a_waiting_workflow(client: TestClient) -> None:
    ui_workflows.greet.step(workflow.wait_for_event(workflow.ExternalEvent, "never")).run_async(
        workflow_id="waiting"
    )
    assert client.post("/api/workflows/waiting/cancel", headers=AUTH).status_code == 200
    assert workflow.get_status("waiting") == workflow.WorkflowStatus.CANCELED


def test_delete_removes_the_workflow(client: TestClient) -> None:
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    assert client.delete("/api/workflows/ok-1", headers=AUTH).status_code == 200
    assert client.get("/api/workflows/ok-1").status_code == 404


def test_openapi_document_describes_the_api(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {
        "/api/workflows",
        "/api/workflows/{workflow_id}",
        "/api/workflows/{workflow_id}/events/{key}",
    } <= set(paths)
    assert "/" not in paths  # the pages are not part of the API


def test_actors_are_listed_with_their_recent_calls(client: TestClient) -> None:
    cart = ui_workflows.Cart.get_or_create("cart-1")
    cart.add.run("apple")
    cart.add.run("pear")
    (listed,) = client.get("/api/actors").json()["items"]
    detail = client.get("/api/actors/cart-1").json()
    assert (listed["actor_id"], listed["calls"]) == ("cart-1", 2)
    assert [call["method"] for call in detail["recent_calls"]] == ["add", "add", "__init__"]  # newest first
    assert detail["state_preview"] is None  # state is unpickled only with --show-outputs


def test_unknown_actor_is_404(client: TestClient) -> None:
    assert client.get("/api/actors/nobody").status_code == 404
