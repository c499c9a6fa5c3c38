"""The ``durably ui`` command (also ``python -m durably_ui``): serve the dashboard with uvicorn."""

from __future__ import annotations

import os

import click

from durably.cli import storage_option
from durably_ui._settings import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, check_bind


@click.command("ui")
@storage_option
@click.option(
    "--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on (loopback by default)."
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--executor",
    default="ray",
    show_default=True,
    help="Where workflows resumed from the dashboard run: 'ray' (joins or starts Ray) or 'local'.",
)
@click.option(
    "--show-outputs",
    is_flag=True,
    help=(
        "Allow previews of step outputs and actor state on an unsigned store (a signed one allows "
        "them). They are unpickled: only for trusted storage."
    ),
)
def ui_command(storage: str, host: str, port: int, executor: str, show_outputs: bool) -> None:
    """Serve the durably dashboard and HTTP API for the workflows in a storage.

    Requests that change anything need a bearer token: $DURABLY_UI_TOKEN, or one generated and
    printed here. Listening on a non-loopback address requires $DURABLY_UI_TOKEN.
    """
    import uvicorn

    from durably_ui._app import create_app

    try:
        check_bind(host, token_given=bool(os.environ.get(TOKEN_ENV)))
        app = create_app(os.path.expanduser(storage), executor=executor, show_outputs=show_outputs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = app.state.durably_ui_settings
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"durably ui: serving {settings.storage_url} on http://{shown_host}:{port}/", err=True)
    if settings.token_generated:
        click.echo(
            f"durably ui: token for actions and events (set {TOKEN_ENV} to choose one): {settings.token}",
            err=True,
        )
    else:
        click.echo(f"durably ui: actions and events need the token in ${TOKEN_ENV}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def main() -> None:
    """Entry point of ``python -m durably_ui``."""
    ui_command(prog_name="python -m durably_ui")
