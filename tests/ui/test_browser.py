"""The dashboard in headless Chromium: list, filter, a failure's traceback and graph, resume, an event."""

from __future__ import annotations

import json
import urllib.parse
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


@pytest.fixture(scope="module")
def scene(
    shared_storage: str, dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Workflows of every kind a dashboard shows: finished, failed, with a continuation, waiting.

    Stored once for the module; each test that changes one uses its own workflow.
    """
    workflow.init(storage=shared_storage, executor="local")
    folder = tmp_path_factory.mktemp("markers")
    (folder / "open").touch()
    for number in range(3):
        ui_workflows.order_workflow(str(folder / "open"), number).run(
            workflow_id=f"order-{number}", metadata={"customer": f"c{number}", "region": "eu"}
        )
    ui_workflows.plan.step(4).run(workflow_id="planned")
    for workflow_id, number in (("order-broken", 9), ("order-to-resume", 10)):
        with pytest.raises(workflow.WorkflowExecutionError):
            ui_workflows.order_workflow(str(folder / workflow_id), number).run(
                workflow_id=workflow_id, metadata={"customer": f"c{number}"}
            )
    waiting = {
        workflow_id: ui_workflows.greet.step(
            workflow.wait_for_event(workflow.ExternalEvent, "approval")
        ).run_async(workflow_id=workflow_id)
        for workflow_id in ("awaiting-http", "awaiting-form")
    }
    cart = ui_workflows.Cart.get_or_create("cart-7")
    for item in ("apple", "pear", "<b>fig</b>"):
        cart.add.run(item)
    return {"fix": folder / "order-to-resume", "waiting": waiting}


def test_the_list_shows_counts_and_filters_by_status(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(ui.url)
    expect(page.locator("#workflows tbody tr")).to_have_count(8)
    expect(page.locator(".count.c-SUCCESSFUL .number")).to_have_text("4")
    expect(page.locator(".count.c-FAILED .number")).to_have_text("2")
    page.screenshot(path=str(ARTIFACTS / "workflows.png"), full_page=True)
    page.select_option("select[name=status]", "FAILED")
    page.click("form.filters button")
    expect(page.locator("#workflows tbody tr td.id")).to_have_text(["order-to-resume", "order-broken"])


def test_the_list_refreshes_itself(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(ui.url + "/?q=late-")
    expect(page.locator("#workflows .empty")).to_be_visible()
    ui_workflows.fetch.step(1).run(workflow_id="late-arrival")
    expect(page.locator("#workflows td.id")).to_have_text("late-arrival", timeout=30_000)


def test_the_list_searches_by_id_prefix(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(ui.url)
    page.fill("input[name=q]", "order-")
    page.press("input[name=q]", "Enter")
    expect(page.locator("#workflows tbody tr")).to_have_count(5)


def test_a_failed_workflow_shows_its_traceback_and_graph(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(ui.url + "/?status=FAILED")
    page.click("text=order-broken")
    expect(page.locator("h1 .badge")).to_have_text("FAILED")
    expect(page.locator("#error .traceback")).to_contain_text("warehouse offline")
    expect(page.locator("#error .traceback")).to_contain_text("check_stock")
    expect(page.locator("svg.graph .node")).to_have_count(4)
    expect(page.locator("svg.graph .node.s-FAILED")).to_contain_text("check_stock")
    expect(page.locator("svg.graph .node.s-SUCCESSFUL")).to_have_count(2)
    expect(page.locator("svg.timeline .bar.s-SUCCESSFUL")).to_have_count(2)
    expect(page.locator("svg.timeline .bar.s-FAILED rect")).to_be_visible()
    expect(page.locator("svg.timeline .bar.s-FAILED .row-label")).to_contain_text("check_stock")
    page.screenshot(path=str(ARTIFACTS / "workflow-failed.png"), full_page=True)


def test_a_step_output_is_previewed_on_demand(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(detail_url(ui, "order-1"))
    row = page.locator("#steps tr", has_text="ship")
    row.locator("button.preview").click()
    expect(row.locator("pre.output")).to_have_text("'order 1 shipped, 30 EUR'")


def test_a_virtual_actor_shows_its_calls_and_state(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(ui.url)
    page.click("nav >> text=Virtual actors")
    page.click("text=cart-7")
    expect(page.locator("table.list tbody tr")).to_have_count(4)  # three calls and the constructor
    expect(page.locator("pre.output")).to_contain_text("<b>fig</b>")
    page.screenshot(path=str(ARTIFACTS / "actor.png"), full_page=True)


def test_a_continuation_is_drawn_in_the_graph(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(detail_url(ui, "planned"))
    expect(page.locator("svg.graph .edge.continuation")).not_to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "workflow-continuation.png"), full_page=True)


def test_resume_after_the_fix_turns_the_workflow_successful(page: Page, ui: Dashboard, scene: Any) -> None:
    scene["fix"].touch()
    page.goto(detail_url(ui, "order-to-resume"))
    page.click(".actions >> text=Resume")
    expect(page.locator("h1")).to_contain_text("Resume workflow")
    page.screenshot(path=str(ARTIFACTS / "confirm-resume.png"), full_page=True)
    page.fill("input[name=token]", TOKEN)
    page.click("form.confirm button[type=submit]")
    reload_until_status(page, "SUCCESSFUL")
    expect(page.locator("#error")).to_have_count(0)
    expect(page.locator("svg.graph .node.s-SUCCESSFUL")).to_have_count(4)
    page.screenshot(path=str(ARTIFACTS / "workflow-resumed.png"), full_page=True)


def test_an_event_posted_over_http_finishes_the_waiting_workflow(
    page: Page, ui: Dashboard, scene: Any
) -> None:
    page.goto(detail_url(ui, "awaiting-http"))
    expect(page.locator("h1 .badge")).to_have_text("RUNNING")
    status, _ = ui.request("POST", "/api/workflows/awaiting-http/events/approval", {"name": "Ada"})
    assert status == 200
    reload_until_status(page, "SUCCESSFUL")
    assert scene["waiting"]["awaiting-http"].result(timeout=60) == "hello Ada"


def test_send_event_from_the_page(page: Page, ui: Dashboard, scene: Any) -> None:
    page.goto(detail_url(ui, "awaiting-form"))
    page.click(".actions >> text=Send event")
    page.fill("input[name=key]", "approval")
    page.fill("textarea[name=payload]", json.dumps({"name": "Grace"}))
    page.fill("input[name=token]", TOKEN)
    page.click("form.confirm button[type=submit]")
    reload_until_status(page, "SUCCESSFUL")
    assert scene["waiting"]["awaiting-form"].result(timeout=60) == "hello Grace"


def test_hostile_strings_are_shown_as_text_and_never_run(page: Page, ui: Dashboard, scene: Any) -> None:
    message = "<script>alert('err')</script><b>bold</b>"
    with pytest.raises(workflow.WorkflowExecutionError):
        ui_workflows.hostile.step(message).run(
            workflow_id="<img src=x onerror=alert(1)>", metadata={"owner": "<script>alert('meta')</script>"}
        )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(ui.url + "/?q=%3Cimg")
    page.click("td.id a")
    expect(page.locator("#error .error-line")).to_contain_text(message)
    expect(page.locator("#metadata")).to_contain_text("<script>alert('meta')</script>")
    expect(page.locator("h1 code")).to_have_text("<img src=x onerror=alert(1)>")
    assert dialogs == []
    assert page.locator("#error b, main img").count() == 0
