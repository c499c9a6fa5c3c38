"""Event listeners: how a workflow waits for something outside it to happen."""

from __future__ import annotations

from typing import Any

from durably.events._context import EventStepContext, current_event_step

__all__ = ["EventListener", "EventStepContext", "current_event_step"]


class EventListener:
    """Waits for one event from an outside system, for one ``wait_for_event`` step.

    When a workflow reaches ``workflow.wait_for_event(MyListener, *args, **kwargs)``, durably
    creates the listener with no arguments, awaits ``poll_for_event(*args, **kwargs)``, stores
    the event it returns, and only then awaits :meth:`event_checkpointed`; the event becomes the
    step's output once that returned. A crash before the event is stored makes durably poll
    again, on a new listener; a crash after it uses the stored event and calls
    :meth:`event_checkpointed` again, on a new listener, so it must be idempotent (committing an
    offset twice, acknowledging twice). Both methods run on an event loop shared by every
    waiting step: never block in them (use ``asyncio.to_thread`` for blocking clients).
    Configuration the listener needs that must not be stored (secrets) goes into a subclass's
    ``__init__`` or the environment, not into the arguments: ``wait_for_event`` refuses keyword
    arguments whose names look secret (password, token, secret, credential, ``sasl*``, ``*_key``),
    pointing at :attr:`secret_hint`, unless the listener lists the name in :attr:`public_arguments`.
    """

    #: Where this listener reads its secrets from, shown when a secret is passed as an argument.
    secret_hint: str = "give it to the listener's __init__ in a subclass, or read it from the environment"
    #: Argument names that look secret but are not, for this listener (Ray's HTTP ``event_key``).
    public_arguments: tuple[str, ...] = ()

    async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
        """Wait for the event and return it; the value must be picklable."""
        raise NotImplementedError(f"{type(self).__name__} must implement async poll_for_event()")

    async def event_checkpointed(self, event: Any) -> None:
        """Called after the event is durably stored (at least once; make it idempotent)."""
