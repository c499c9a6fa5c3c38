"""Where event steps wait: one event loop per process (``local``) or one async actor per cluster (``ray``).

Thousands of steps can wait at once on one loop: they hold no worker and no CPU.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from durably._protocol import StepOutcome, StepTask
from durably.events._runner import run_event_step

EVENTS_ACTOR_NAME = "durably-events"
EVENTS_NAMESPACE = "durably"
#: Threads for listeners that block in ``asyncio.to_thread`` (Kafka consumers, for one).
LISTENER_THREADS = 10_000


_WakeKey = tuple[str, str, str]
# Steps of this process waiting for an external event, so a send_event here (or a wake call to
# this process's events actor) needs no poll.
_waiters: dict[_WakeKey, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
_waiters_lock = threading.Lock()


@contextlib.contextmanager
def waiting_for(storage_url: str, workflow_id: str, key: str) -> Iterator[asyncio.Event]:
    """While inside, the event is set whenever ``wake_waiters`` is called for this external event key."""
    wake = asyncio.Event()
    registration = (asyncio.get_running_loop(), wake)
    wake_key = (storage_url, workflow_id, key)
    with _waiters_lock:
        _waiters.setdefault(wake_key, set()).add(registration)
    try:
        yield wake
    finally:
        with _waiters_lock:
            registered = _waiters.get(wake_key)
            if registered is not None:
                registered.discard(registration)
                if not registered:
                    del _waiters[wake_key]


def wake_waiters(storage_url: str, workflow_id: str, key: str) -> int:
    """Make the steps of this process waiting for ``key`` look at storage now; returns how many."""
    with _waiters_lock:
        waiters = list(_waiters.get((storage_url, workflow_id, key), ()))
    for loop, event in waiters:
        loop.call_soon_threadsafe(event.set)
    return len(waiters)


class _Shared:
    __slots__ = ("callers", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.callers: set[str] = set()


class EventStepHost:
    """Runs event steps as coroutines; a step already waiting here is joined, not polled twice.

    A second call for the same step (the engine resumed after its driver died while the first
    call still waits) shares the first call's wait, so one step never consumes two events. The
    wait is cancelled when every caller withdrew (or was cancelled).
    """

    def __init__(self) -> None:
        self._running: dict[tuple[str, str, str], _Shared] = {}
        self._withdrawn: set[str] = set()
        self._executor_set = False

    async def run(self, task: StepTask, caller: str, *inputs: Any) -> tuple[Any, StepOutcome]:
        """Run one event step to its end for ``caller`` (an id the caller may ``withdraw`` by)."""
        if not self._executor_set:
            self._executor_set = True
            asyncio.get_running_loop().set_default_executor(
                concurrent.futures.ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="durably-listener")
            )
        if caller in self._withdrawn:  # withdrawn before this call arrived
            self._withdrawn.discard(caller)
            raise asyncio.CancelledError()
        key = (task.storage_url, task.workflow_id, task.spec.step_id)
        shared = self._running.get(key)
        if shared is None:
            shared = _Shared(asyncio.ensure_future(run_event_step(task, *inputs)))
            self._running[key] = shared
            shared.task.add_done_callback(lambda _: self._forget(key, shared))
        shared.callers.add(caller)
        try:
            return await asyncio.shield(shared.task)
        finally:
            self._leave(shared, caller)

    async def withdraw(self, storage_url: str, workflow_id: str, step_id: str, caller: str) -> None:
        """The caller no longer wants the step's event (its workflow was cancelled or failed)."""
        shared = self._running.get((storage_url, workflow_id, step_id))
        if shared is None or caller not in shared.callers:
            self._withdrawn.add(caller)
            return
        self._leave(shared, caller)

    @staticmethod
    def _leave(shared: _Shared, caller: str) -> None:
        shared.callers.discard(caller)
        if not shared.callers and not shared.task.done():
            shared.task.cancel()

    def _forget(self, key: tuple[str, str, str], shared: _Shared) -> None:
        if self._running.get(key) is shared:
            del self._running[key]

    async def wake(self, storage_url: str, workflow_id: str, key: str) -> int:
        """Make the steps here waiting for external event ``key`` of the workflow look at storage now."""
        return wake_waiters(storage_url, workflow_id, key)

    async def waiting(self) -> int:
        """How many event steps wait here now."""
        return len(self._running)


class LocalEventLoop:
    """An event loop in a daemon thread of this process, running event steps for the local executor."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.host = EventStepHost()
        self._thread = threading.Thread(target=self.loop.run_forever, name="durably-events", daemon=True)
        self._thread.start()

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        """Start the step once the futures among ``inputs`` are done; returns (value, info) futures."""

        async def after_inputs() -> tuple[Any, StepOutcome]:
            resolved = [
                await asyncio.wrap_future(item) if isinstance(item, concurrent.futures.Future) else item
                for item in inputs
            ]
            return await self.host.run(task, "local", *resolved)

        outer = asyncio.run_coroutine_threadsafe(after_inputs(), self.loop)
        value: concurrent.futures.Future[Any] = concurrent.futures.Future()
        info: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def finished(done: concurrent.futures.Future[tuple[Any, StepOutcome]]) -> None:
            if done.cancelled():
                value.cancel()
                info.cancel()
                return
            error = done.exception()
            for future in (value, info):
                if future.set_running_or_notify_cancel():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(done.result()[0] if future is value else done.result()[1])

        def info_cancelled(future: concurrent.futures.Future[Any]) -> None:
            if future.cancelled():
                outer.cancel()

        info.add_done_callback(info_cancelled)
        outer.add_done_callback(finished)
        return value, info


_local_loop: LocalEventLoop | None = None
_local_lock = threading.Lock()


def local_event_loop() -> LocalEventLoop:
    """This process's event-step loop, started on first use."""
    global _local_loop
    with _local_lock:
        if _local_loop is None:
            _local_loop = LocalEventLoop()
        return _local_loop


def events_actor() -> Any:
    """The cluster's detached ``durably-events`` actor (created on first use); holds no CPU."""
    import ray

    actor_class = ray.remote(num_cpus=0, max_concurrency=100_000)(EventStepHost)  # type: ignore[call-overload]
    return actor_class.options(  # type: ignore[attr-defined]
        name=EVENTS_ACTOR_NAME,
        namespace=EVENTS_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
    ).remote()


def wake_events_actor(storage_url: str, workflow_id: str, key: str) -> None:
    """Ask the cluster's events actor, if there is one, to look for a new external event now."""
    import ray

    if not ray.is_initialized():
        return
    try:
        actor = ray.get_actor(EVENTS_ACTOR_NAME, namespace=EVENTS_NAMESPACE)
    except ValueError:  # no event step has run on this cluster yet
        return
    actor.wake.remote(storage_url, workflow_id, key)
