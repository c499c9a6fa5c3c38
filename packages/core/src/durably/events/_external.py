"""External events: ``send_event`` stores a message; ``wait_for_event(ExternalEvent, key)`` takes one.

Messages under one key form a queue (like DBOS ``send``/``recv`` and Temporal signals): every
message sent is kept in the workflow's storage until a waiting step takes it, each is taken by
exactly one ``wait_for_event`` step, oldest first. A waiter polls storage (backing off to
``MAX_POLL_INTERVAL``), and a sender in a process that can reach the waiter's event loop wakes it
at once (through the registry of waiters in ``events._hosts``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from durably import _config
from durably._errors import WorkflowError
from durably._inspect import existing_store, status_of
from durably._status import WorkflowStatus
from durably.events import EventListener
from durably.events._context import current_event_step
from durably.events._hosts import waiting_for, wake_events_actor, wake_waiters
from durably.events._runner import in_storage_thread

#: The longest a waiting step goes without looking at storage for a new message (seconds).
MAX_POLL_INTERVAL = 0.5
FIRST_POLL_INTERVAL = 0.01
MAX_KEY_LENGTH = 1024


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise TypeError(
            f"an external event key is a non-empty string of at most {MAX_KEY_LENGTH} characters, got {key!r}"
        )
    return key


class ExternalEvent(EventListener):
    """Waits for a message sent with ``workflow.send_event(workflow_id, key, payload)``; returns the payload.

    Registered as ``"external"``. Use it as ``workflow.wait_for_event(workflow.ExternalEvent, key)``.
    Messages sent before the workflow reaches the wait are kept; each message is received by one
    wait only, in the order sent. Any process that shares the workflow's storage can send.
    """

    async def poll_for_event(self, key: str) -> Any:  # type: ignore[override]
        """Take the oldest message under ``key`` that no other step of this workflow took."""
        _check_key(key)
        context = current_event_step()
        store, step_id = context.store, context.step_id
        # A message this step was taking when it crashed is still its own.
        number = await in_storage_thread(store.load_receiving, step_id, key)
        if number is not None and await in_storage_thread(store.claim_message, key, number, step_id):
            return await in_storage_thread(store.load_message, key, number)
        with waiting_for(context.storage_url, store.workflow_id, key) as wake:
            interval = FIRST_POLL_INTERVAL
            while True:
                wake.clear()
                taken = await in_storage_thread(_take_message, store, key, step_id)
                if taken is not None:
                    return taken[0]
                try:
                    await asyncio.wait_for(wake.wait(), interval)
                    interval = FIRST_POLL_INTERVAL
                except asyncio.TimeoutError:
                    interval = min(MAX_POLL_INTERVAL, interval * 2)


def _take_message(store: Any, key: str, step_id: str) -> tuple[Any] | None:
    """Claim the oldest unclaimed message under ``key`` for ``step_id``: (payload,), or None if none."""
    numbers = store.message_numbers(key)
    if not numbers:
        return None
    claimed = store.claimed_numbers(key)
    for number in numbers:
        if number in claimed:
            continue
        # Say which message we take before taking it: a crash in between then finds it again.
        store.save_receiving(step_id, key, number)
        if store.claim_message(key, number, step_id):
            return (store.load_message(key, number),)
    return None


def send_event(workflow_id: str, key: str, payload: Any = None) -> None:
    """Send ``payload`` to the ``wait_for_event(ExternalEvent, key)`` steps of a workflow.

    The message is stored in the workflow's storage before this returns, so it is kept until a
    step takes it, even if the workflow has not reached the wait yet or is resumed later. Messages
    under one key queue up: each is received by exactly one wait, oldest first. Raises
    ``WorkflowNotFoundError`` for an unknown workflow and ``WorkflowError`` for one that finished
    (SUCCESSFUL or CANCELED), since nothing would ever receive the message.
    """
    _check_key(key)
    store = existing_store(workflow_id)
    status = status_of(store)
    if status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED):
        raise WorkflowError(
            f"cannot send event {key!r} to workflow {workflow_id!r}: it has finished ({status.value}), "
            "so no step will ever receive it"
        )
    store.add_message(key, payload)
    _wake(_config.current(), workflow_id, key)


def _wake(config: _config.Config, workflow_id: str, key: str) -> None:
    """Best effort: tell the event loop that runs the workflow's waits to look now (it polls anyway)."""
    if wake_waiters(config.storage_url, workflow_id, key) or not config.has_cluster_host:
        return
    wake_events_actor(config.storage_url, workflow_id, key)
