"""The changes the dashboard can make (resume, cancel, delete, send an event), via ``durably.workflow``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from durably import workflow
from durably_ui._settings import Settings

#: The actions a confirmation page and the API offer, with the words the page uses.
ACTIONS = {
    "resume": "Resume",
    "cancel": "Cancel",
    "delete": "Delete",
    "send-event": "Send event",
}
#: What the workflow's page says after an action.
DONE = {
    "resume": "Resumed: it continues from its checkpoints.",
    "cancel": "Cancelled.",
    "send-event": "Event sent: a step waiting for its key takes it.",
}


class Actions:
    """Performs actions on the dashboard's storage; configures ``durably.workflow`` on first use.

    Reading never needs this (so a dashboard without Ray starts none); the first action calls
    ``workflow.init`` with the dashboard's storage and executor, in this process.
    """

    def __init__(self, settings: Settings, on_change: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        self._on_change = on_change
        self._ready = False
        self._lock = threading.Lock()

    def _before_change(self) -> None:
        with self._lock:
            if not self._ready:
                workflow.init(storage=self._settings.storage_url, executor=self._settings.executor)
                self._ready = True
        self._on_change()  # e.g. recount statuses: this action is about to change one

    def resume(self, workflow_id: str) -> None:
        """Start resuming the workflow (returns once it is submitted, not when it ends)."""
        self._before_change()
        workflow.resume_async(workflow_id)

    def cancel(self, workflow_id: str) -> None:
        self._before_change()
        workflow.cancel(workflow_id)

    def delete(self, workflow_id: str) -> None:
        self._before_change()
        workflow.delete(workflow_id)

    def send_event(self, workflow_id: str, key: str, payload: Any) -> None:
        """Deliver ``payload`` exactly as ``workflow.send_event(workflow_id, key, payload)`` does."""
        self._before_change()
        workflow.send_event(workflow_id, key, payload)
