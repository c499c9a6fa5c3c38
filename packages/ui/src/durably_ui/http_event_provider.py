"""Ray 2.x's ``ray.workflow.http_event_provider`` for durably: events posted over HTTP to the dashboard's API.

Ray code moves by changing one import::

    from durably_ui.http_event_provider import HTTPListener   # was: from ray.workflow.http_event_provider
    event = workflow.wait_for_event(HTTPListener, event_key="approval")

and the event arrives when something posts to the dashboard (with its bearer token), either
``POST /api/workflows/{workflow_id}/events/{key}`` with the payload as the JSON body, or Ray's
``POST /event/send_event/{workflow_id}`` with ``{"event_key": ..., "event_payload": ...}``.
Unlike Ray's provider (a Serve deployment holding events in memory, answering 404 until the step
waited), the message is stored in the workflow's storage before the request is answered: it may be
sent before the workflow reaches the wait, and survives crashes of the sender, the dashboard and
the workflow.
"""

from __future__ import annotations

from typing import Any

from durably.events import current_event_step
from durably.workflow import ExternalEvent

__all__ = ["HTTPListener"]


class HTTPListener(ExternalEvent):
    """Waits for an event posted over HTTP under ``event_key``; returns ``(event_key, payload)`` like Ray's.

    Registered as the ``"http"`` event listener. Without ``event_key`` the key is the waiting
    step's id (Ray used its task id). Any ``workflow.send_event(workflow_id, event_key, payload)``
    is received too: HTTP events and Python events share one queue per key.
    """

    #: An event key names a queue, not a credential, though it ends in "key".
    public_arguments = ("event_key",)

    async def poll_for_event(self, event_key: str | None = None) -> tuple[str, Any]:  # type: ignore[override]
        key = event_key if event_key is not None else current_event_step().step_id
        payload = await super().poll_for_event(key)
        return key, payload
