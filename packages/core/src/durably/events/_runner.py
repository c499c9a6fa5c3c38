"""Runs one event step (``wait_for_event``, ``sleep``) on an event loop: poll, checkpoint, acknowledge.

An event step holds no worker while it waits: executors run it as a coroutine on one shared
event loop (a thread for ``local``, the ``durably-events`` async actor for ``ray``). It returns
``(value, outcome)`` exactly as :func:`durably.executors.execute_step` does, so the engine treats it
like any other step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any, TypeVar

from durably import _codec
from durably._plugins import hook
from durably._protocol import DONE, UNRESOLVED, UNRESOLVED_INPUT, StepFailure, StepOutcome, StepTask
from durably._runner import (
    load_function,
    record_finished_step,
    recorded_outcome,
    resolve_inputs,
    step_metadata,
)
from durably._store import open_workflow_store
from durably.events import EventListener
from durably.events._context import EventStepContext, _current

T = TypeVar("T")

#: Storage calls are blocking; they run on this pool so listeners that fill the loop's default
#: executor (``asyncio.to_thread``) can never starve them.
_storage_pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="durably-event-io")


async def in_storage_thread(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking storage call without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_storage_pool, func, *args)


def acknowledges(listener: EventListener) -> bool:
    """Whether the listener does anything in ``event_checkpointed`` (if not, no pending record is needed)."""
    return type(listener).event_checkpointed is not EventListener.event_checkpointed


async def run_event_step(task: StepTask, *inputs: Any) -> tuple[Any, StepOutcome]:
    """Deliver one event into the workflow exactly once; returns (value for consumers, outcome).

    The event is stored as the step's pending event before ``event_checkpointed`` is called, and
    becomes the step's output only after that call returned. A crash before the pending record
    polls again; a crash after it uses the stored event and calls ``event_checkpointed`` again.
    """
    spec = task.spec
    store = open_workflow_store(task.storage_url, task.workflow_id)
    # A retried event step (its actor restarted) keeps what it recorded: ``sleep`` its deadline.
    recorded = await in_storage_thread(recorded_outcome, store, spec)
    if recorded is not None:
        return recorded
    values = await in_storage_thread(resolve_inputs, store, inputs)
    if values is None:
        return UNRESOLVED, UNRESOLVED_INPUT
    listener_class = await in_storage_thread(load_function, store, spec.func_key)
    args, kwargs = _codec.loads_with(spec.encoded_args, lambda pid: values[pid[1]])
    hook().durably_step_started(
        workflow_id=task.workflow_id, step_id=spec.step_id, name=spec.name, attempt=1, context=task.context
    )
    started = time.time()
    try:
        listener = listener_class()
        needs_ack = acknowledges(listener)
        found, event = (
            (await in_storage_thread(store.load_pending_event, spec.step_id)) if needs_ack else (False, None)
        )
        if not found:
            token = _current.set(EventStepContext(task.storage_url, store, spec.step_id))
            try:
                event = await listener.poll_for_event(*args, **kwargs)
            finally:
                _current.reset(token)
            if needs_ack:
                await in_storage_thread(store.save_pending_event, spec.step_id, event)
        if needs_ack:
            await listener.event_checkpointed(event)
    except Exception as error:
        hook().durably_step_failed(
            workflow_id=task.workflow_id,
            step_id=spec.step_id,
            name=spec.name,
            error=error,
            context=task.context,
        )
        raise StepFailure(task.workflow_id, spec.step_id, error) from error
    meta = step_metadata(spec, started, time.time(), attempts=1)
    # The event is always stored, whatever ``checkpoint`` says: delivery is exactly-once.
    event = await in_storage_thread(record_finished_step, store, task, event, meta, True)
    return event, DONE
