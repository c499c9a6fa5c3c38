"""Listeners and child-process scripts for the event tests; importable by child drivers and Ray workers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from durably_test_helpers import count_runs, record_run

from durably import workflow

HERE = Path(__file__).resolve().parent
#: Bound on every wait in the event tests (a loaded 2-core machine, 200 workflows at once).
WAIT = 180.0


class FileEventListener(workflow.EventListener):
    """The event is the text of ``<folder>/<name>.event`` once it exists; records each poll and ack.

    Marker files make it crash its own process: ``crash-after-poll`` (after polling, before the
    event is stored) and ``crash-in-ack`` (in ``event_checkpointed``, after it is stored); each
    crashes once.
    """

    async def poll_for_event(self, folder: str, name: str) -> tuple[str, str]:  # type: ignore[override]
        path = Path(folder, f"{name}.event")
        record_run(folder, f"waiting-{name}")
        try:
            while not path.exists():
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            record_run(folder, f"cancelled-{name}")
            raise
        record_run(folder, f"poll-{name}")
        _crash_once(folder, "crash-after-poll")
        return folder, path.read_text()  # the folder too, for event_checkpointed

    async def event_checkpointed(self, event: tuple[str, str]) -> None:
        folder, text = event
        record_run(folder, f"ack-{text}")
        _crash_once(folder, "crash-in-ack")


def _crash_once(folder: str, marker: str) -> None:
    if Path(folder, marker).exists() and not Path(folder, f"{marker}.done").exists():
        Path(folder, f"{marker}.done").touch()
        os.kill(os.getpid(), signal.SIGKILL)


class ArgumentsListener(workflow.EventListener):
    """Records how it was built and polled: the event is ``(constructor args, poll args, poll kwargs)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.constructed_with = (args, kwargs)

    async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
        return self.constructed_with, args, kwargs


class FailingListener(workflow.EventListener):
    async def poll_for_event(self, reason: str) -> None:  # type: ignore[override]
        raise ConnectionError(reason)


class FailingOnceWaitingListener(workflow.EventListener):
    """Fails with ``reason`` once the FileEventListener for ``name`` in ``folder`` waits (polls)."""

    async def poll_for_event(self, folder: str, name: str, reason: str) -> None:  # type: ignore[override]
        while count_runs(Path(folder), f"waiting-{name}") == 0:
            await asyncio.sleep(0.02)
        raise ConnectionError(reason)


@workflow.step
def received(event: Any) -> Any:
    return event


@workflow.step
def woke_at(_: Any) -> float:
    return time.time()


#: A child driver (local executor) that runs ``flow`` and is killed by a listener or by the test.
CHILD = """
import sys, time
sys.path.insert(0, {here!r})
import cloudpickle, durably_test_helpers, event_support
cloudpickle.register_pickle_by_value(durably_test_helpers)
cloudpickle.register_pickle_by_value(event_support)
from durably import workflow
from event_support import *
workflow.init(storage={storage!r}, executor="local")
{body}
"""


def child_script(storage: str, body: str) -> str:
    return CHILD.format(here=str(HERE), storage=storage, body=body)
