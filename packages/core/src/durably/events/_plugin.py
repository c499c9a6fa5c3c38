"""Registers the built-in event listeners through the ordinary event-listener hook."""

from __future__ import annotations

from collections.abc import Mapping

from durably.hookspecs import hookimpl
from durably.events import EventListener


@hookimpl
def durably_event_listeners() -> Mapping[str, type[EventListener]]:
    return {}
