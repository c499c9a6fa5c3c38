"""Durable timers: ``workflow.sleep`` is a recorded deadline followed by a wait for it."""

from __future__ import annotations

import asyncio
import time

from durably.events import EventListener


class TimerListener(EventListener):
    """Waits until an absolute time (seconds since the epoch, as ``time.time()``); the event is None.

    Registered as ``"timer"``: ``workflow.wait_for_event("timer", deadline)``. A deadline in the past
    returns at once.
    """

    async def poll_for_event(self, until: float) -> None:  # type: ignore[override]
        """Return at ``until``; the wait survives crashes because ``until`` is stored with the step."""
        while True:
            left = until - time.time()
            if left <= 0:
                return
            # Re-read the clock in bounded slices, so a wall-clock jump does not oversleep by hours.
            await asyncio.sleep(min(left, 60.0))


class SleepDeadline(EventListener):
    """The first step of ``workflow.sleep(seconds)``: its output, the deadline, is recorded once.

    It runs when the workflow reaches the sleep (not when the graph is built); on resume its
    stored output is used, so the timer waits only for what is left.
    """

    async def poll_for_event(self, seconds: float) -> float:  # type: ignore[override]
        """The absolute deadline: now plus ``seconds``."""
        return time.time() + seconds
