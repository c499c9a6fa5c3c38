"""Registers the built-in event listeners through the ordinary event-listener hook."""

from __future__ import annotations

from collections.abc import Mapping

from durably.events import EventListener
from durably.hookspecs import hookimpl


@hookimpl
def durably_event_listeners() -> Mapping[str, type[EventListener]]:
    from durably.events._external import ExternalEvent
    from durably.events._timer import TimerListener

    return {"external": ExternalEvent, "timer": TimerListener}
