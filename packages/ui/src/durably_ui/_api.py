"""The JSON API under /api: read workflows and actors, act on them, post events (OpenAPI document too)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse

from durably.inspect import Inspector
from durably_ui._actions import Actions
from durably_ui._counts import CachedCounts
from durably_ui._errors import OutputsHiddenError
from durably_ui._security import require_token, settings_of
from durably_ui._settings import MAX_PREVIEW_CHARS, outputs_allowed

router = APIRouter(prefix="/api", tags=["workflows"])


def inspector_of(request: Request) -> Inspector:
    inspector: Inspector = request.app.state.durably_ui_inspector
    return inspector


def actions_of(request: Request) -> Actions:
    actions: Actions = request.app.state.durably_ui_actions
    return actions


def counts_of(request: Request) -> CachedCounts:
    counts: CachedCounts = request.app.state.durably_ui_counts
    return counts


def as_json(value: Any) -> Any:
    return dataclasses.asdict(value)


def preview(request: Request, workflow_id: str, step_id: str | None, max_chars: int) -> str:
    """A bounded repr of a stored output, only where the dashboard may unpickle outputs."""
    if not outputs_allowed(settings_of(request)):
        raise OutputsHiddenError()
    return inspector_of(request).output_preview(
        workflow_id, step_id, max_chars=max_chars, allow_unpickle=True
    )


@router.get("/workflows", summary="List workflows, newest first, one page at a time")
def list_workflows(
    request: Request,
    status: Annotated[list[str] | None, Query(description="only these statuses (repeat it)")] = None,
    prefix: Annotated[str | None, Query(description="only ids starting with this")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="the next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    page = inspector_of(request).list_workflows(status=status, prefix=prefix, limit=limit, after=after)
    return {"items": [as_json(item) for item in page.items], "next_cursor": page.next_cursor}


@router.get("/counts", summary="How many workflows have each status (recounted at most every 10 s)")
def counts(request: Request) -> dict[str, int]:
    return dict(counts_of(request).get())


@router.get("/workflows/{workflow_id}", summary="One workflow: status, metadata, error, steps")
def show_workflow(request: Request, workflow_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = as_json(inspector_of(request).get_workflow(workflow_id))
    return detail


@router.get("/workflows/{workflow_id}/steps", summary="A workflow's steps (continuations nested)")
def steps(request: Request, workflow_id: str) -> list[dict[str, Any]]:
    return [as_json(step) for step in inspector_of(request).get_workflow(workflow_id).steps]


@router.get(
    "/workflows/{workflow_id}/output",
    summary="A bounded preview (repr) of the workflow's output, or of one step's",
    description="Answers 403 unless the dashboard runs with --show-outputs: a preview unpickles stored data.",
)
def output(
    request: Request,
    workflow_id: str,
    step_id: Annotated[str | None, Query(description="a step's id; the workflow's output without it")] = None,
    max_chars: Annotated[int, Query(ge=1, le=MAX_PREVIEW_CHARS)] = 2000,
) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "step_id": step_id,
        "preview": preview(request, workflow_id, step_id, max_chars),
    }


@router.post("/workflows/{workflow_id}/resume", dependencies=[Depends(require_token)], summary="Resume")
def resume(request: Request, workflow_id: str) -> dict[str, Any]:
    actions_of(request).resume(workflow_id)
    return {"workflow_id": workflow_id, "resumed": True}


@router.post("/workflows/{workflow_id}/cancel", dependencies=[Depends(require_token)], summary="Cancel")
def cancel(request: Request, workflow_id: str) -> dict[str, Any]:
    actions_of(request).cancel(workflow_id)
    return {"workflow_id": workflow_id, "canceled": True}


@router.delete(
    "/workflows/{workflow_id}", dependencies=[Depends(require_token)], summary="Delete a stopped workflow"
)
def delete(request: Request, workflow_id: str) -> dict[str, Any]:
    actions_of(request).delete(workflow_id)
    return {"workflow_id": workflow_id, "deleted": True}


@router.post(
    "/workflows/{workflow_id}/events/{key}",
    dependencies=[Depends(require_token)],
    summary="Send an event: the JSON body is the payload, exactly like workflow.send_event",
    description=(
        "Stores the message before answering, so it is kept until a `wait_for_event(ExternalEvent, key)` "
        "(or `HTTPListener`) step takes it. 404: no such workflow; 409: it has finished."
    ),
)
def send_event(
    request: Request,
    workflow_id: str,
    key: str,
    payload: Annotated[Any, Body(description="any JSON value")] = None,
) -> dict[str, Any]:
    actions_of(request).send_event(workflow_id, key, payload)
    return {"workflow_id": workflow_id, "key": key, "delivered": True}


@router.get("/actors", tags=["actors"], summary="List virtual actors")
def list_actors(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50, after: str | None = None
) -> dict[str, Any]:
    page = inspector_of(request).list_actors(limit=limit, after=after)
    return {"items": [as_json(item) for item in page.items], "next_cursor": page.next_cursor}


@router.get("/actors/{actor_id}", tags=["actors"], summary="One virtual actor: recent calls, state preview")
def show_actor(request: Request, actor_id: str) -> dict[str, Any]:
    allowed = outputs_allowed(settings_of(request))
    detail: dict[str, Any] = as_json(inspector_of(request).get_actor(actor_id, allow_unpickle=allowed))
    return detail


ray_router = APIRouter(tags=["ray compatibility"])


@ray_router.post(
    "/event/send_event/{workflow_id}",
    dependencies=[Depends(require_token)],
    summary="Ray 2.x HTTPEventProvider's endpoint: body {event_key, event_payload}",
)
def ray_send_event(
    request: Request, workflow_id: str, body: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    missing = [field for field in ("event_key", "event_payload") if field not in body]
    if missing:
        # Ray's provider answered 404 for a malformed body; kept so Ray clients' retry loops behave.
        return JSONResponse(
            status_code=404,
            content={
                "error": {"code": 404, "message": f"{missing[0]!r} field is not found in the request JSON"}
            },
        )
    actions_of(request).send_event(workflow_id, str(body["event_key"]), body["event_payload"])
    return JSONResponse(status_code=200, content={})
