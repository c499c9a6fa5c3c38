"""The pluggy entry point: makes ``KafkaEventListener`` known to durably under the name "kafka"."""

from __future__ import annotations

from collections.abc import Mapping

from durably import EventListener, hookimpl
from durably_kafka._listener import KafkaEventListener


@hookimpl
def durably_event_listeners() -> Mapping[str, type[EventListener]]:
    return {"kafka": KafkaEventListener}
