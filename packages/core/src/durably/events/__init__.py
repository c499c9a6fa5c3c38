"""Event listeners: how a workflow waits for something outside it to happen."""

from __future__ import annotations

from typing import Any


class EventListener:
    """Waits for one event from an outside system, for one ``wait_for_event`` step.

    durably creates the listener with the arguments given to ``wait_for_event`` (after the
    class arguments), calls :meth:`poll_for_event` until it returns an event, checkpoints the
    event, and only then calls :meth:`event_checkpointed`. A crash before the checkpoint makes
    durably poll again; after it, the stored event is used and :meth:`event_checkpointed` is
    called again, so it must be idempotent (committing an offset twice, acknowledging twice).
    """

    async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
        """Wait for the event and return it; the value must be picklable."""
        raise NotImplementedError(f"{type(self).__name__} must implement async poll_for_event()")

    async def event_checkpointed(self, event: Any) -> None:
        """Called after the event is durably stored (at least once; make it idempotent)."""
