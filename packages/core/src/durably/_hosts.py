"""Where engines run: threads of this process (``local``) or a detached Ray actor (``ray``).

The Ray host is one detached actor per cluster, so a workflow started with ``run_async`` goes
on after the driver that started it exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from durably._driver import drive
from durably._errors import WorkflowQueueFullError, WorkflowRunningError
from durably._graph import Graph
from durably._lease import current_epoch, identity, lease_is_live
from durably._resolve import open_executor
from durably._status import WorkflowStatus
from durably._store import WorkflowStore, open_workflow_store
from durably.executors import Executor

ENGINE_ACTOR_NAME = "durably-engine"
ENGINE_NAMESPACE = "durably"
#: Results of workflows started by drivers that never asked for them are kept this long (count).
KEEP_UNCLAIMED_RESULTS = 10_000
#: How many deaths of the engine actor a waiting ``run`` follows (resuming each time) before it gives up.
ENGINE_RESTARTS_FOLLOWED = 8


def _may_queue(store: WorkflowStore) -> bool:
    """Whether marking the workflow PENDING tells the truth: it is new, queued, or left by a dead driver.

    A finished (SUCCESSFUL, FAILED, CANCELED) workflow keeps its status, and so does one another
    driver is running: queueing must never revive or hide either.
    """
    record = store.load_status_meta()
    if record is None:
        return store.result_step_id() is None
    status = record.get("status")
    if status == WorkflowStatus.PENDING:
        return True
    return status == WorkflowStatus.RUNNING and not lease_is_live(store.storage, store.lease_key)


class Admission:
    """At most ``max_running`` workflows run at once; up to ``max_pending`` more wait, PENDING, in order."""

    def __init__(self) -> None:
        self.max_running: int | None = None
        self.max_pending: int | None = None
        self.running = 0
        self.waiting = 0
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        with self._turns:
            self.max_running, self.max_pending = max_running, max_pending
            self._turns.notify_all()

    def reserve(self, storage_url: str, workflow_id: str) -> int:
        """Take a ticket; refuse when the queue is full; mark the workflow PENDING if it must wait."""
        with self._turns:
            max_running, max_pending = self.max_running, self.max_pending
            must_wait = max_running is not None and (self.running + self.waiting) >= max_running
            if max_running is not None and must_wait and max_pending is not None:
                queued = self.running + self.waiting - max_running
                if queued >= max_pending:
                    raise WorkflowQueueFullError(workflow_id, max_running, max_pending)
            self.waiting += 1
            ticket = self._next_ticket
            self._next_ticket += 1
        if must_wait:
            store = open_workflow_store(storage_url, workflow_id)
            if _may_queue(store):
                epoch = current_epoch(store.storage, store.lease_key)
                # Who queued it: if that process is gone, nobody will run it (status_of: RESUMABLE).
                store.save_status(
                    WorkflowStatus.PENDING, epoch=epoch, queued_at=time.time(), queued_by=identity()
                )
        return ticket

    def enter(self, ticket: int) -> None:
        """Wait for this ticket's turn and a free running slot."""
        with self._turns:
            while ticket != self._serving or (
                self.max_running is not None and self.running >= self.max_running
            ):
                self._turns.wait()
            self._serving += 1
            self.waiting -= 1
            self.running += 1
            self._turns.notify_all()

    def leave(self) -> None:
        with self._turns:
            self.running -= 1
            self._turns.notify_all()


class EngineHost:
    """Runs workflow engines in threads of the current process, one per running workflow."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.admission = Admission()
        self._cancel_events: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=10_000, thread_name_prefix="durably-engine"
        )
        self._started: dict[int, concurrent.futures.Future[Any]] = {}
        self._started_count = 0
        # Ids admitted here and not finished: from the call that starts them, before their
        # engine takes the lease, so a second start is refused at once and status says RUNNING.
        self._driving: set[tuple[str, str]] = set()
        self._gc: Any = None

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        self.admission.configure(max_running, max_pending)

    def configure_gc(self, start_collector: Callable[[], Any] | None) -> None:
        """Run the periodic gc ``start_collector()`` starts, stopping the previous one (None: stop).

        The API passes ``_retention.PeriodicCollector`` in (bound to its storage and interval):
        retention also reads virtual actors' records, a layer above the engine hosts.
        """
        with self._lock:
            if self._gc is not None:
                self._gc.stop()
            self._gc = start_collector() if start_collector is not None else None

    def reserve(self, storage_url: str, workflow_id: str) -> int:
        key = (storage_url, workflow_id)
        with self._lock:
            if key in self._driving:
                raise WorkflowRunningError(workflow_id, "started earlier and not finished")
            self._driving.add(key)
        try:
            return self.admission.reserve(storage_url, workflow_id)
        except BaseException:
            with self._lock:
                self._driving.discard(key)
            raise

    def driving(self, storage_url: str) -> frozenset[str]:
        """The ids of ``storage_url`` that this host was asked to run and that have not finished."""
        with self._lock:
            return frozenset(workflow_id for url, workflow_id in self._driving if url == storage_url)

    def run_reserved(
        self,
        ticket: int,
        storage_url: str,
        workflow_id: str,
        graph: Graph | None,
        context: Mapping[str, str],
    ) -> Any:
        key = (storage_url, workflow_id)
        event = threading.Event()
        with self._lock:
            self._cancel_events[key] = event
        self.admission.enter(ticket)
        try:
            return drive(storage_url, workflow_id, self.executor, graph, event, context)
        finally:
            self.admission.leave()
            with self._lock:
                self._driving.discard(key)
                if self._cancel_events.get(key) is event:
                    del self._cancel_events[key]

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]) -> Any:
        """Drive the workflow on this thread; ``context``: the caller's ``propagation_context``."""
        ticket = self.reserve(storage_url, workflow_id)
        return self.run_reserved(ticket, storage_url, workflow_id, graph, context)

    def run_async(
        self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]
    ) -> concurrent.futures.Future[Any]:
        ticket = self.reserve(storage_url, workflow_id)
        return self._threads.submit(self.run_reserved, ticket, storage_url, workflow_id, graph, context)

    def start(
        self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]
    ) -> int:
        """Start the workflow here before returning (a caller may exit at once); ``result`` waits."""
        future = self.run_async(storage_url, workflow_id, graph, context)
        with self._lock:
            self._started_count += 1
            number = self._started_count
            self._started[number] = future
            while len(self._started) > KEEP_UNCLAIMED_RESULTS:
                oldest = next(iter(self._started))
                if not self._started[oldest].done():
                    break
                del self._started[oldest]
        return number

    def result(self, number: int) -> Any:
        return self.claim(number).result()

    def claim(self, number: int) -> concurrent.futures.Future[Any]:
        """The future of a workflow started with ``start`` (forgotten here once claimed)."""
        with self._lock:
            return self._started.pop(number)

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        """Signal a workflow run by this host; False if it runs elsewhere (or not at all)."""
        with self._lock:
            event = self._cancel_events.get((storage_url, workflow_id))
        if event is None:
            return False
        event.set()
        return True

    def ping(self) -> bool:
        return True


class EngineActor:
    """The body of the cluster's engine actor: an asyncio actor, so callers waiting for results
    hold no thread; each running workflow's engine has a thread of the host's pool."""

    def __init__(self, executor_name: str) -> None:
        self.host = EngineHost(open_executor(executor_name))

    def ping(self) -> bool:
        return True

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        self.host.configure(max_running, max_pending)

    def configure_gc(self, start_collector: Callable[[], Any] | None) -> None:
        self.host.configure_gc(start_collector)

    def start(
        self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]
    ) -> int:
        return self.host.start(storage_url, workflow_id, graph, context)

    async def result(self, number: int) -> Any:
        return await asyncio.wrap_future(self.host.claim(number))

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        return self.host.cancel(storage_url, workflow_id)

    def driving(self, storage_url: str) -> frozenset[str]:
        return self.host.driving(storage_url)


class RayEngineHost:
    """A handle on the cluster's detached engine actor (created on first use).

    For executors with ``has_cluster_host``; the actor runs engines with the executor ``executor_name``.
    """

    def __init__(self, executor_name: str) -> None:
        import ray

        # Ray's type stubs do not list actor options such as max_concurrency (of an asyncio actor:
        # how many calls may wait at once; no thread each).
        actor_class = ray.remote(num_cpus=0, max_concurrency=100_000)(EngineActor)  # type: ignore[call-overload]
        self.actor = actor_class.options(  # type: ignore[attr-defined]
            name=ENGINE_ACTOR_NAME,
            namespace=ENGINE_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
        ).remote(executor_name)

    def _wait_until_available(self, timeout: float = 120.0) -> None:
        """Block while the engine actor restarts (after it crashed), so calls are not lost to it."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            try:
                ray.get(self.actor.ping.remote(), timeout=timeout)
                return
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        import ray

        self._wait_until_available()
        ray.get(self.actor.configure.remote(max_running, max_pending))

    def configure_gc(self, start_collector: Callable[[], Any] | None) -> None:
        """Run gc periodically in the cluster's engine actor, which outlives this driver."""
        import ray

        if start_collector is None:
            return  # another driver may have asked the shared engine actor for gc: leave it
        self._wait_until_available()
        ray.get(self.actor.configure_gc.remote(start_collector))

    def run_async(
        self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]
    ) -> Any:
        """Start the workflow in the engine actor; ``context`` (the caller's trace context, say)
        goes with it, as a step's goes to its worker."""
        import ray

        self._wait_until_available()
        try:
            # Started inside the engine actor before this returns: the driver may exit right away.
            number = ray.get(self.actor.start.remote(storage_url, workflow_id, graph, dict(context)))
        except ray.exceptions.RayTaskError as error:
            raise error.cause if isinstance(error.cause, Exception) else error from None
        return self.actor.result.remote(number)

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]) -> Any:
        import ray

        for attempt in range(ENGINE_RESTARTS_FOLLOWED + 1):
            try:
                return ray.get(self.run_async(storage_url, workflow_id, graph, context))
            except ray.exceptions.RayActorError:
                # The engine actor died with the workflow in it. It restarts (max_restarts=-1);
                # running the workflow there again resumes it from its checkpoints (or returns
                # its stored result), so the caller gets its output, not the actor's death.
                if attempt == ENGINE_RESTARTS_FOLLOWED:
                    raise
            except ray.exceptions.RayTaskError as error:
                cause = error.cause
                if isinstance(cause, Exception):
                    raise cause from cause.__cause__
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        import ray

        self._wait_until_available()
        return bool(ray.get(self.actor.cancel.remote(storage_url, workflow_id)))

    def driving(self, storage_url: str) -> frozenset[str]:
        import ray

        self._wait_until_available()
        return frozenset(ray.get(self.actor.driving.remote(storage_url)))
