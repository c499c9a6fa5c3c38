"""A KafkaEventListener that counts its polls and acks and can crash its process once, for workflow tests.

The counts go to the folder in ``$KAFKA_WORKFLOW_COUNTS``; the marker files ``crash-after-poll``
(after a message was received, before durably stored it) and ``crash-in-ack`` (after it was
stored, before the offset is committed) there make it SIGKILL its own process, once each.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from durably import workflow
from durably_kafka import KafkaEvent, KafkaEventListener

COUNTS_ENV = "KAFKA_WORKFLOW_COUNTS"


def _record(name: str) -> None:
    with open(Path(os.environ[COUNTS_ENV], name), "a") as handle:
        handle.write("x\n")


def _crash_once(marker: str) -> None:
    folder = Path(os.environ[COUNTS_ENV])
    if (folder / marker).exists() and not (folder / f"{marker}.done").exists():
        (folder / f"{marker}.done").touch()
        os.kill(os.getpid(), signal.SIGKILL)


class CountingKafkaListener(KafkaEventListener):
    async def poll_for_event(self, topic: str, **kwargs: Any) -> KafkaEvent:  # type: ignore[override]
        _record("waiting")
        event = await super().poll_for_event(topic, **kwargs)
        _record("poll")
        _crash_once("crash-after-poll")
        return event

    async def event_checkpointed(self, event: KafkaEvent) -> None:
        _record("ack")
        _crash_once("crash-in-ack")
        await super().event_checkpointed(event)


@workflow.step
def value_of(event: KafkaEvent) -> bytes | None:
    return event.value
