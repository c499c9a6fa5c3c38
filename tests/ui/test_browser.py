"""The dashboard in headless Chromium: list, filter, a failure's traceback and graph, resume, an event."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import ui_workflows
from conftest import ARTIFACTS, TOKEN, Dashboard
from playwright.sync_api import Page, expect

from durably import workflow

pytestmark = pytest.mark.browser


def detail_url(dashboard: Dashboard, workflow_id: str) -> str:
    return f"{dashboard.url}/workflows/{urllib.parse.quote(workflow_id, safe='')}"


def reload_until_status(page: Page, status: str, attempts: int = 120) -> None:
    """Reload the workflow's page until its badge shows ``status`` (the engine runs in the background)."""
    badge = page.locator("h1 .badge")
    for _ in range(attempts):
        if badge.inner_text() == status:
            return
        page.wait_for_timeout(500)
        page.reload()
    expect(badge).to_have_text(status)


@pytest.fixture
def stored(storage: str, tmp_path: Path) -> dict[str, Any]:
    """Workflows of every kind a dashboard shows: finished, failed, with a continuation, waiting."""
    marker = tmp_path / "warehouse-fixed"
    (tmp_path / "always-there").touch()
    for number in range(3):
        ui_workflows.order_workflow(str(tmp_path / "always-there"), number).run(
            workflow_id=f"order-{number}", metadata={"customer": f"c{number}", "region": "eu"}
        )
    ui_workflows.plan.step(4).run(workflow_id="planned")
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.order_workflow(str(marker), 9).run(
            workflow_id="order-broken", metadata={"customer": "c9"}
        )
    waiting = ui_workflows.greet.step(workflow.wait_for_event(workflow.ExternalEvent, "approval"))
    return {"marker": marker, "waiting": waiting.run_async(workflow_id="awaiting-approval")}


def test_the_list_shows_counts_and_filters_by_status(page: Page, dashboard: Dashboard, stored: Any) -> None:
    page.goto(dashboard.url)
    expect(page.locator("#workflows tbody tr")).to_have_count(6)
    expect(page.locator(".count.c-SUCCESSFUL .number")).to_have_text("4")
    page.screenshot(path=str(ARTIFACTS / "workflows.png"), full_page=True)
    page.select_option("select[name=status]", "FAILED")
    page.click("form.filters button")
    expect(page.locator("#workflows tbody tr")).to_have_count(1)
    expect(page.locator("#workflows tbody tr td.id")).to_have_text("order-broken")


def test_the_list_searches_by_id_prefix(page: Page, dashboard: Dashboard, stored: Any) -> None:
    page.goto(dashboard.url)
    page.fill("input[name=q]", "order-")
    page.press("input[name=q]", "Enter")
    expect(page.locator("#workflows tbody tr")).to_have_count(4)


def test_a_failed_workflow_shows_its_traceback_and_graph(
    page: Page, dashboard: Dashboard, stored: Any
) -> None:
    page.goto(dashboard.url + "/?status=FAILED")
    page.click("text=order-broken")
    expect(page.locator("h1 .badge")).to_have_text("FAILED")
    expect(page.locator("#error .traceback")).to_contain_text("warehouse offline")
    expect(page.locator("#error .traceback")).to_contain_text("check_stock")
    expect(page.locator("svg.graph .node")).to_have_count(4)
    expect(page.locator("svg.graph .node.s-FAILED")).to_contain_text("check_stock")
    expect(page.locator("svg.graph .node.s-SUCCESSFUL")).to_have_count(2)
    expect(page.locator("svg.timeline .bar.s-SUCCESSFUL")).to_have_count(2)
    page.screenshot(path=str(ARTIFACTS / "workflow-failed.png"), full_page=True)


def test_a_continuation_is_drawn_in_the_graph(page: Page, dashboard: Dashboard, stored: Any) -> None:
    page.goto(detail_url(dashboard, "planned"))
    expect(page.locator("svg.graph .edge.continuation")).not_to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "workflow-continuation.png"), full_page=True)


def test_resume_after_the_fix_turns_the_workflow_successful(
    page: Page, dashboard: Dashboard, stored: Any
) -> None:
    stored["marker"].touch()
    page.goto(detail_url(dashboard, "order-broken"))
    page.click(".actions >> text=Resume")
    expect(page.locator("h1")).to_contain_text("Resume workflow")
    page.fill("input[name=token]", TOKEN)
    page.click("form.confirm button[type=submit]")
    reload_until_status(page, "SUCCESSFUL")
    expect(page.locator("#error")).to_have_count(0)
    expect(page.locator("svg.graph .node.s-SUCCESSFUL")).to_have_count(4)
    page.screenshot(path=str(ARTIFACTS / "workflow-resumed.png"), full_page=True)


def test_an_event_posted_over_http_finishes_the_waiting_workflow(
    page: Page, dashboard: Dashboard, stored: Any
) -> None:
    page.goto(detail_url(dashboard, "awaiting-approval"))
    expect(page.locator("h1 .badge")).to_have_text("RUNNING")
    status, _ = dashboard.request("POST", "/api/workflows/awaiting-approval/events/approval", {"name": "Ada"})
    assert status == 200
    reload_until_status(page, "SUCCESSFUL")
    assert stored["waiting"].result(timeout=60) == "hello Ada"


def test_send_event_from_the_page(page: Page, dashboard: Dashboard, stored: Any) -> None:
    page.goto(detail_url(dashboard, "awaiting-approval"))
    page.click(".actions >> text=Send event")
    page.fill("input[name=key]", "approval")
    page.fill("textarea[name=payload]", json.dumps({"name": "Grace"}))
    page.fill("input[name=token]", TOKEN)
    page.click("form.confirm button[type=submit]")
    reload_until_status(page, "SUCCESSFUL")
    assert stored["waiting"].result(timeout=60) == "hello Grace"


def test_hostile_strings_are_shown_as_text_and_never_run(
    page: Page, dashboard: Dashboard, storage: str
) -> None:
    message = "<script>alert('err')</script><b>bold</b>"
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.hostile.step(message).run(
            workflow_id="<img src=x onerror=alert(1)>", metadata={"owner": "<script>alert('meta')</script>"}
        )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(dashboard.url)
    page.click("td.id a")
    expect(page.locator("#error .error-line")).to_contain_text(message)
    expect(page.locator("#metadata")).to_contain_text("<script>alert('meta')</script>")
    expect(page.locator("h1 code")).to_have_text("<img src=x onerror=alert(1)>")
    assert dialogs == []
    assert page.locator("#error b, main img").count() == 0
