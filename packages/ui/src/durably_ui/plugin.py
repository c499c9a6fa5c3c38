"""Registers the ``durably ui`` command and the ``"http"`` event listener (entry point ``durably: ui``)."""

from __future__ import annotations

from collections.abc import Mapping

import click

from durably.events import EventListener
from durably.hookspecs import hookimpl


@hookimpl
def durably_register_commands(cli: click.Group) -> None:
    # Imported here: loading the plugin (every durably process does) must not import the web stack.
    from durably_ui._cli import ui_command

    cli.add_command(ui_command)


@hookimpl
def durably_event_listeners() -> Mapping[str, type[EventListener]]:
    from durably_ui.http_event_provider import HTTPListener

    return {"http": HTTPListener}
