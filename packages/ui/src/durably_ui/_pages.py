"""The HTML pages: workflows, one workflow (graph, timeline, steps), actors, and action confirmations."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from durably.workflow import WorkflowStatus
from durably_ui._actions import ACTIONS, DONE
from durably_ui._api import actions_of, counts_of, inspector_of
from durably_ui._errors import message_of, status_code_of
from durably_ui._layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    TIMELINE_LABEL_WIDTH,
    flatten,
    format_seconds,
    layout_graph,
    layout_timeline,
)
from durably_ui._security import csrf_value, set_session, settings_of, signed_in
from durably_ui._settings import outputs_allowed

PAGE_SIZE = 50
STATUSES = [status.value for status in WorkflowStatus]


def _format_time(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _environment() -> Environment:
    # Autoescape everything, SVG included: ids, names, metadata and errors are user-controlled.
    environment = Environment(
        loader=PackageLoader("durably_ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    environment.filters.update(
        when=_format_time,
        seconds=format_seconds,
        segment=lambda value: quote(str(value), safe=""),
        pretty=lambda value: json.dumps(value, indent=2, sort_keys=True, default=repr),
        shorten=lambda value, length=22: value if len(value) <= length else value[: length - 1] + "…",
    )
    environment.globals.update(
        statuses=STATUSES,
        flat_steps=flatten,
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
        label_width=TIMELINE_LABEL_WIDTH,
    )
    return environment


templates = Jinja2Templates(env=_environment())
router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.update(
        base=request.scope.get("root_path", "").rstrip("/"),
        storage_url=settings_of(request).storage_url,
        signed_in=signed_in(request),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, exc: BaseException) -> HTMLResponse:
    code = status_code_of(exc) or 500
    return _render(request, "error.html", status_code=code, code=code, message=message_of(exc))


@router.get("/", response_class=HTMLResponse)
def workflows(
    request: Request, status: str = "", q: str = "", after: str = "", live: str = ""
) -> HTMLResponse:
    inspector = inspector_of(request)
    status = status.upper()
    if status and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    page = inspector.list_workflows(
        status=[status] if status else None, prefix=q or None, limit=PAGE_SIZE, after=after or None
    )
    counts = dict(counts_of(request).get())
    filters = {key: value for key, value in (("status", status), ("q", q)) if value}
    next_query = urlencode({**filters, "after": page.next_cursor}) if page.next_cursor else None
    return _render(
        request,
        "workflows_live.html" if live else "workflows.html",
        page=page,
        counts=counts,
        total=sum(counts.values()),
        status=status,
        q=q,
        after=after,
        filters_query=urlencode(filters),
        next_query=next_query,
    )


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
def workflow_page(request: Request, workflow_id: str, done: str = "") -> HTMLResponse:
    detail = inspector_of(request).get_workflow(workflow_id)
    return _render(
        request,
        "workflow.html",
        detail=detail,
        graph=layout_graph(detail.steps),
        timeline=layout_timeline(detail.steps, time.time()),
        outputs_allowed=outputs_allowed(settings_of(request)),
        done=DONE.get(done),
        actions=ACTIONS,
    )


@router.get("/workflows/{workflow_id}/actions/{action}", response_class=HTMLResponse)
def confirm(request: Request, workflow_id: str, action: str) -> HTMLResponse:
    _check_action(action)
    summary = inspector_of(request).get_workflow(workflow_id).summary
    return _render(
        request,
        "confirm.html",
        summary=summary,
        action=action,
        label=ACTIONS[action],
        csrf=csrf_value(request),
    )


@router.post("/workflows/{workflow_id}/actions/{action}")
async def act(request: Request, workflow_id: str, action: str) -> Response:
    _check_action(action)
    form = await request.form()
    if not settings_of(request).token_matches_derived(str(form.get("csrf", "")), "csrf"):
        return _render(
            request,
            "error.html",
            status_code=403,
            code=403,
            message="the form expired or came "
            "from another site (CSRF check failed); open the action again from the dashboard",
        )
    presented = str(form.get("token", "")) or None
    if not signed_in(request) and not settings_of(request).token_matches(presented):
        summary = inspector_of(request).get_workflow(workflow_id).summary
        return _render(
            request,
            "confirm.html",
            status_code=401,
            summary=summary,
            action=action,
            label=ACTIONS[action],
            csrf=csrf_value(request),
            failed="that token is not the dashboard's token",
        )
    await _run_action(request, workflow_id, action, form.get("key"), form.get("payload"))
    base = request.scope.get("root_path", "").rstrip("/")
    target = (
        f"{base}/" if action == "delete" else f"{base}/workflows/{quote(workflow_id, safe='')}?done={action}"
    )
    response = RedirectResponse(target, status_code=303)
    set_session(response, request)
    return response


async def _run_action(request: Request, workflow_id: str, action: str, key: Any, payload: Any) -> None:
    actions = actions_of(request)
    if action == "send-event":
        if not isinstance(key, str) or not key:
            raise ValueError("an event needs a key: the key its wait_for_event step waits for")
        try:
            value = json.loads(payload) if isinstance(payload, str) and payload.strip() else None
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'the payload must be JSON (e.g. {{"approved": true}} or "text"): {exc}'
            ) from None
        await run_in_threadpool(actions.send_event, workflow_id, key, value)
    else:
        await run_in_threadpool(getattr(actions, action), workflow_id)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")


@router.get("/actors", response_class=HTMLResponse)
def actors(request: Request, after: str = "") -> HTMLResponse:
    page = inspector_of(request).list_actors(limit=PAGE_SIZE, after=after or None)
    next_query = urlencode({"after": page.next_cursor}) if page.next_cursor else None
    return _render(request, "actors.html", page=page, next_query=next_query, after=after)


@router.get("/actors/{actor_id}", response_class=HTMLResponse)
def actor_page(request: Request, actor_id: str) -> HTMLResponse:
    allowed = outputs_allowed(settings_of(request))
    detail = inspector_of(request).get_actor(actor_id, allow_unpickle=allowed)
    return _render(request, "actor.html", detail=detail, outputs_allowed=allowed)
