"""Which event step a listener's ``poll_for_event`` is running for (public: ``durably.events``)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durably._store import WorkflowStore


@dataclass(frozen=True)
class EventStepContext:
    """The event step a listener is polling for (what built-in listeners need to find their events).

    ``step_id`` is the waiting step's id (unique in its workflow); ``storage_url`` the storage
    its workflow is kept in. ``store`` is durably's internal handle on that workflow.
    """

    storage_url: str
    store: WorkflowStore
    step_id: str


_current: contextvars.ContextVar[EventStepContext | None] = contextvars.ContextVar(
    "durably_event_step", default=None
)


def current_event_step() -> EventStepContext:
    """The event step whose ``poll_for_event`` is running; only valid inside it."""
    context = _current.get()
    if context is None:
        raise RuntimeError("this listener only works inside a workflow's wait_for_event step")
    return context
