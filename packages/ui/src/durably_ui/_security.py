"""Who may change things: the bearer token for the API, a session cookie and CSRF field for the pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from starlette.responses import Response

from durably_ui._settings import Settings

SESSION_COOKIE = "durably_ui_session"
# Pages load only what the package ships: no inline script, no third-party origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.durably_ui_settings
    return settings


def require_token(request: Request) -> None:
    """FastAPI dependency of every mutating API route: ``Authorization: Bearer <token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not settings_of(request).token_matches(presented.strip()):
        raise HTTPException(
            status_code=401,
            detail="this request changes state: send the dashboard's token as "
            "'Authorization: Bearer <token>' (DURABLY_UI_TOKEN, or the one `durably ui` printed at start)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def signed_in(request: Request) -> bool:
    """Whether the browser holds the session cookie given after it once presented the token."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and settings_of(request).token_matches_derived(cookie, "session")


def csrf_value(request: Request) -> str:
    return settings_of(request).derived("csrf")


def set_session(response: Response, request: Request) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        settings_of(request).derived("session"),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=request.scope.get("root_path") or "/",
    )


async def add_security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
