"""External events: ``send_event`` stores a message; ``wait_for_event(ExternalEvent, key)`` takes one.

Messages under one key form a queue (like DBOS ``send``/``recv`` and Temporal signals): every
message sent is kept in the workflow's storage until a waiting step takes it, each is taken by
exactly one ``wait_for_event`` step, oldest first. A waiter polls storage (backing off to
``MAX_POLL_INTERVAL``), and a sender in a process that can reach the waiter's event loop wakes it
at once.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from durably._errors import WorkflowError
from durably._status import WorkflowStatus
from durably.events import EventListener
from durably.events._runner import current_event_step, in_storage_thread

#: The longest a waiting step goes without looking at storage for a new message (seconds).
MAX_POLL_INTERVAL = 0.5
FIRST_POLL_INTERVAL = 0.01
MAX_KEY_LENGTH = 1024

_WakeKey = tuple[str, str, str]
# Waiters of this process, so a send_event here (or a wake call to this actor) needs no poll.
_waiters: dict[_WakeKey, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
_waiters_lock = threading.Lock()


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise TypeError(
            f"an external event key is a non-empty string of at most {MAX_KEY_LENGTH} characters, got {key!r}"
        )
    return key


def wake_waiters(storage_url: str, workflow_id: str, key: str) -> int:
    """Make the steps of this process waiting for ``key`` look at storage now; returns how many."""
    with _waiters_lock:
        waiters = list(_waiters.get((storage_url, workflow_id, key), ()))
    for loop, event in waiters:
        loop.call_soon_threadsafe(event.set)
    return len(waiters)


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
        wake = asyncio.Event()
        registration = (asyncio.get_running_loop(), wake)
        wake_key = (context.storage_url, store.workflow_id, key)
        with _waiters_lock:
            _waiters.setdefault(wake_key, set()).add(registration)
        try:
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
        finally:
            with _waiters_lock:
                registered = _waiters.get(wake_key)
                if registered is not None:
                    registered.discard(registration)
                    if not registered:
                        del _waiters[wake_key]


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
    from durably import _api

    _check_key(key)
    store = _api._existing_store(workflow_id)
    status = _api._status_of(store)
    if status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED):
        raise WorkflowError(
            f"cannot send event {key!r} to workflow {workflow_id!r}: it has finished ({status.value}), "
            "so no step will ever receive it"
        )
    store.add_message(key, payload)
    _wake(_api.config(), workflow_id, key)


def _wake(config: Any, workflow_id: str, key: str) -> None:
    """Best effort: tell the event loop that runs the workflow's waits to look now (it polls anyway)."""
    if wake_waiters(config.storage_url, workflow_id, key) or config.executor != "ray":
        return
    from durably.events._hosts import wake_events_actor

    wake_events_actor(config.storage_url, workflow_id, key)
