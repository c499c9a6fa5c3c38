"""The dashboard as a Ray Serve deployment: ``serve.run(deployment(storage).bind(), route_prefix=...)``."""

from __future__ import annotations

from typing import Any

from durably_ui._settings import resolve_token


def deployment(
    storage: str,
    *,
    token: str | None = None,
    executor: str = "ray",
    show_outputs: bool = False,
    **deployment_options: Any,
) -> Any:
    """A Serve deployment serving :func:`durably_ui.create_app` (pages, API, event endpoint).

    Each replica builds its own app (nothing with live clients is pickled). ``token`` defaults to
    ``$DURABLY_UI_TOKEN`` of this process, and must be given one way or the other: every replica
    must require the same token. ``deployment_options`` go to ``serve.deployment`` (e.g.
    ``num_replicas``). Serve listens on its own address (``serve.start(http_options=...)``);
    keep it on loopback or behind your proxy.
    """
    from ray import serve

    chosen, generated = resolve_token(token)
    if generated:
        raise ValueError(
            "a Serve deployment needs a token that every replica shares: pass token=... or set "
            "DURABLY_UI_TOKEN in the process that builds the deployment"
        )

    def build() -> Any:
        from durably_ui._app import create_app

        return create_app(storage, token=chosen, executor=executor, show_outputs=show_outputs)

    options = {"name": "DurablyUI", **deployment_options}
    return serve.deployment(serve.ingress(build)(), **options)
