"""durably-ui: a web dashboard and an HTTP API (including an HTTP event endpoint) for durably workflows.

``create_app(storage)`` builds the ASGI app; ``durably ui --storage URL`` serves it;
:class:`durably_ui.http_event_provider.HTTPListener` receives events posted to the API.
"""

from __future__ import annotations

from durably_ui._app import create_app
from durably_ui._settings import DEFAULT_PORT, TOKEN_ENV

__all__ = ["DEFAULT_PORT", "TOKEN_ENV", "create_app"]
