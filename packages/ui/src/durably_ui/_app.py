"""Builds the dashboard: one ASGI app (FastAPI) with the pages, the JSON API and the shipped assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from durably.inspect import Inspector
from durably.workflow import WorkflowError
from durably_ui import _api, _pages
from durably_ui._actions import Actions
from durably_ui._counts import CachedCounts
from durably_ui._errors import OutputsHiddenError, message_of, status_code_of
from durably_ui._security import add_security_headers
from durably_ui._settings import Settings, resolve_token

STATIC = Path(__file__).parent / "static"


def create_app(
    storage: str,
    *,
    token: str | None = None,
    executor: str = "ray",
    show_outputs: bool = False,
) -> FastAPI:
    """The dashboard and HTTP API for the workflows in ``storage``, as an ASGI app.

    Mount it in your own server (e.g. ``Mount("/durably", create_app(...))``) or serve it with
    Ray Serve (``serve.ingress``). Requests that change state need ``token`` (default:
    ``$DURABLY_UI_TOKEN``, else a random one, readable as ``app.state.durably_ui_settings.token``).
    ``executor`` is where resumed workflows run (``"ray"`` or ``"local"``); reading needs no
    executor and never starts Ray. ``show_outputs`` allows previews of stored outputs, which
    unpickles them: only for storage whose writers you trust. Previews are allowed without it when
    the store is signed (``DURABLY_SIGNING_KEY`` set in this process; docs/security.md).
    """
    chosen, generated = resolve_token(token)
    inspector = Inspector(storage)
    settings = Settings(
        storage_url=storage,
        token=chosen,
        executor=executor,
        show_outputs=show_outputs,
        signed=inspector.signed,
        token_generated=generated,
    )
    app = FastAPI(
        title="durably",
        summary="Workflows stored by durably: list, inspect, resume, cancel, delete, send events.",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        # The interactive docs pages load scripts from a CDN; the OpenAPI document is enough.
        docs_url=None,
        redoc_url=None,
    )
    app.state.durably_ui_settings = settings
    app.state.durably_ui_inspector = inspector
    counts = CachedCounts(inspector)
    app.state.durably_ui_counts = counts
    app.state.durably_ui_actions = Actions(settings, on_change=counts.forget)
    app.middleware("http")(add_security_headers)
    app.include_router(_api.router)
    app.include_router(_api.ray_router)
    app.include_router(_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for error in (WorkflowError, OutputsHiddenError, ValueError, TypeError):
        app.exception_handler(error)(_answer_error)
    return app


async def _answer_error(request: Request, exc: Exception) -> Response:
    """Errors a request can cause (unknown id, bad input, wrong state) answered as JSON or a page."""
    code = status_code_of(exc) or 500
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if path.startswith(("/api/", "/event/")):
        return JSONResponse(status_code=code, content={"error": {"code": code, "message": message_of(exc)}})
    return _pages.error_page(request, exc)
