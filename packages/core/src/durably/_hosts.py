"""Where engines run: threads of this process (``local``) or detached Ray engine actors (``ray``).

The Ray host drives a cluster's workflows in a few detached engine actors (shards), each
workflow in the one its id hashes to, so a workflow started with ``run_async`` goes on after
the driver that started it exits, and no one Python process bounds the cluster's throughput.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from durably._driver import drive
from durably._engine_home import FACTORY_TIMEOUT, HOME_NAMESPACE, engine_factory
from durably._errors import WorkflowError, WorkflowQueueFullError, WorkflowRunningError
from durably._graph import Graph
from durably._lease import current_epoch, identity, lease_is_live
from durably._resolve import open_executor
from durably._status import WorkflowStatus
from durably._store import WorkflowStore, open_workflow_store
from durably.executors import Executor

#: The first engine actor's name (the only one with a single engine, as before shards existed);
#: engine ``i > 0`` is ``durably-engine-<i>``.
ENGINE_ACTOR_NAME = "durably-engine"
ENGINE_NAMESPACE = HOME_NAMESPACE
#: What an engine actor's ``ping`` answers, raised whenever a method of ``EngineActor`` changes.
#: Engine actors are detached: one started by an older durably outlives an upgrade of the
#: drivers, and its calls would fail with a bare TypeError; a driver refuses it by name instead.
#: (The engines of versions before this number answer ``True``.)
ENGINE_PROTOCOL = 4
_ENGINE_NAME = re.compile(rf"{re.escape(ENGINE_ACTOR_NAME)}(-[1-9][0-9]*)?")
#: How many engine actors drive workflows when neither ``init(engines=)`` nor this variable says.
ENGINES_ENV = "DURABLY_ENGINES"
#: The default is one engine per alive node of the cluster, at most this many.
DEFAULT_MAX_ENGINES = 8
#: Results of workflows started by drivers that never asked for them are kept this long (count).
KEEP_UNCLAIMED_RESULTS = 10_000
#: How many deaths of the engine actor a waiting ``run`` follows (resuming each time) before it gives up.
ENGINE_RESTARTS_FOLLOWED = 8

_log = logging.getLogger(__name__)


def check_engines(engines: int | None) -> int | None:
    """The number of engine actors asked for: ``engines``, else ``DURABLY_ENGINES``; None for the default.

    Raises a clear error for anything but a whole number of at least 1.
    """
    source = "engines"
    if engines is None:
        text = os.environ.get(ENGINES_ENV, "").strip()
        if not text:
            return None
        source = f"{ENGINES_ENV}={text!r}"
        try:
            engines = int(text)
        except ValueError:
            raise ValueError(
                f"{source} is not a whole number: set it to the number of engine actors (1 or more), "
                "or unset it for one per node"
            ) from None
    elif not isinstance(engines, int) or isinstance(engines, bool):
        raise TypeError(f"engines must be a positive int (or None for one per node), got {engines!r}")
    if engines < 1:
        raise ValueError(
            f"{source if source != 'engines' else f'engines={engines!r}'} must be at least 1 "
            "(the number of engine actors; None or unset for one per node)"
        )
    return engines


def shard_of(workflow_id: str, engines: int) -> int:
    """The engine (0 to ``engines - 1``) that drives ``workflow_id``.

    A hash that every process and Python version computes alike (Python's ``hash`` of a str is
    salted per process), so every driver with the same count sends a workflow to the same engine.
    """
    digest = hashlib.blake2b(workflow_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % engines


def engine_actor_name(index: int) -> str:
    """The name of engine ``index`` (the first keeps the name of the single engine of old)."""
    return ENGINE_ACTOR_NAME if index == 0 else f"{ENGINE_ACTOR_NAME}-{index}"


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


class _ProcessRuns:
    """The workflows this process was asked to run and that have not finished, with their cancel events.

    Kept from the call that starts a run, before its engine takes the lease, so a second start
    is refused at once and its status reads RUNNING. One registry for the process, not one per
    host: a second ``workflow.init`` installs a new host while the runs the first one started
    go on in its threads, and those must still count as started here (and be cancellable).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], threading.Event] = {}

    def reserve(self, storage_url: str, workflow_id: str) -> threading.Event:
        """Count the run as started here; its cancel event. Raises if it already is."""
        with self._lock:
            if (storage_url, workflow_id) in self._runs:
                raise WorkflowRunningError(workflow_id, "started earlier and not finished")
            event = self._runs[storage_url, workflow_id] = threading.Event()
            return event

    def finish(self, storage_url: str, workflow_id: str, event: threading.Event) -> None:
        with self._lock:
            if self._runs.get((storage_url, workflow_id)) is event:
                del self._runs[storage_url, workflow_id]

    def ids(self, storage_url: str) -> frozenset[str]:
        with self._lock:
            return frozenset(workflow_id for url, workflow_id in self._runs if url == storage_url)

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        with self._lock:
            event = self._runs.get((storage_url, workflow_id))
        if event is None:
            return False
        event.set()
        return True


_RUNS = _ProcessRuns()


class EngineHost:
    """Runs workflow engines in threads of the current process, one per running workflow."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.admission = Admission()
        self._lock = threading.Lock()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=10_000, thread_name_prefix="durably-engine"
        )
        self._started: dict[int, concurrent.futures.Future[Any]] = {}
        self._started_count = 0
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

    def reserve(self, storage_url: str, workflow_id: str) -> tuple[int, threading.Event]:
        """Admit the run (its queue ticket) and count it as started in this process (its cancel event)."""
        event = _RUNS.reserve(storage_url, workflow_id)
        try:
            return self.admission.reserve(storage_url, workflow_id), event
        except BaseException:
            _RUNS.finish(storage_url, workflow_id, event)
            raise

    def driving(self, storage_url: str) -> frozenset[str]:
        """The ids of ``storage_url`` that this process was asked to run and that have not finished
        (by any host of it: one replaced by a second ``init`` still drives what it started)."""
        return _RUNS.ids(storage_url)

    def run_reserved(
        self,
        reserved: tuple[int, threading.Event],
        storage_url: str,
        workflow_id: str,
        graph: Graph | None,
        context: Mapping[str, str],
        inherited_env: Mapping[str, Any] | None = None,
    ) -> Any:
        ticket, event = reserved
        try:
            self.admission.enter(ticket)
            try:
                return drive(storage_url, workflow_id, self.executor, graph, event, context, inherited_env)
            finally:
                self.admission.leave()
        finally:
            _RUNS.finish(storage_url, workflow_id, event)

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]) -> Any:
        """Drive the workflow on this thread; ``context``: the caller's ``propagation_context``."""
        reserved = self.reserve(storage_url, workflow_id)
        return self.run_reserved(reserved, storage_url, workflow_id, graph, context)

    def run_async(
        self,
        storage_url: str,
        workflow_id: str,
        graph: Graph | None,
        context: Mapping[str, str],
        inherited_env: Mapping[str, Any] | None = None,
    ) -> concurrent.futures.Future[Any]:
        reserved = self.reserve(storage_url, workflow_id)
        return self._threads.submit(
            self.run_reserved, reserved, storage_url, workflow_id, graph, context, inherited_env
        )

    def start(
        self,
        storage_url: str,
        workflow_id: str,
        graph: Graph | None,
        context: Mapping[str, str],
        inherited_env: Mapping[str, Any] | None = None,
    ) -> int:
        """Start the workflow here before returning (a caller may exit at once); ``result`` waits.

        ``inherited_env``: the runtime_env of the Ray job that asked, which steps inherit.
        """
        future = self.run_async(storage_url, workflow_id, graph, context, inherited_env)
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
        """Signal a workflow run in this process; False if it runs elsewhere (or not at all)."""
        return _RUNS.cancel(storage_url, workflow_id)

    def ping(self) -> bool:
        return True


class EngineActor:
    """The body of the cluster's engine actor: an asyncio actor, so callers waiting for results
    hold no thread; each running workflow's engine has a thread of the host's pool."""

    def __init__(self, executor_name: str) -> None:
        self.host = EngineHost(open_executor(executor_name))

    def ping(self) -> int:
        """The engine protocol this actor speaks (``ENGINE_PROTOCOL`` of its code)."""
        return ENGINE_PROTOCOL

    def node_id(self) -> str:
        """The id of the Ray node this engine runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        self.host.configure(max_running, max_pending)

    def configure_gc(self, start_collector: Callable[[], Any] | None) -> None:
        self.host.configure_gc(start_collector)

    def start(
        self,
        storage_url: str,
        workflow_id: str,
        graph: Graph | None,
        context: Mapping[str, str],
        inherited_env: Mapping[str, Any] | None = None,
    ) -> int:
        return self.host.start(storage_url, workflow_id, graph, context, inherited_env)

    async def result(self, number: int) -> Any:
        return await asyncio.wrap_future(self.host.claim(number))

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        return self.host.cancel(storage_url, workflow_id)

    def driving(self, storage_url: str) -> frozenset[str]:
        return self.host.driving(storage_url)


class RayEngineHost:
    """A handle on the cluster's detached engine actors (created on first use), one per shard.

    For executors with ``has_cluster_host``; the actors run engines with the executor
    ``executor_name``. A workflow goes to engine ``shard_of(id, engines)``; with queue limits
    (``max_running_workflows``, ``max_pending_workflows``) every workflow goes to the first
    engine, whose one queue keeps the limits cluster-wide and the order of submission.
    Cancelling and asking what runs reach every engine actor of the cluster, whatever count the
    driver that started a workflow had.

    On a cluster of several nodes an engine this host creates is pinned (a hard node affinity)
    to the alive node that holds the fewest of its other engines. An engine whose node is gone
    cannot restart there and dies for good; the next call that needs it creates it again on an
    alive node (``_available``).
    """

    def __init__(self, executor_name: str, engines: int | None = None) -> None:
        import ray

        nodes = _alive_nodes()
        self.engines = engines if engines is not None else max(1, min(len(nodes), DEFAULT_MAX_ENGINES))
        self.limited = False
        self._executor_name = executor_name
        self._actor_class = ray.remote(EngineActor)
        self._factory: Any = None
        self._factory_asked = False
        self._replacing = threading.Lock()
        # The node each engine this host created was pinned to (others are asked where they run).
        self._pinned: dict[int, str] = {}
        existing = [_named_engine(index) for index in range(self.engines)]
        self.actors: list[Any] = list(existing)
        for index, actor in enumerate(existing):
            if actor is None:
                self.actors[index] = self._create(index, nodes)

    def __getstate__(self) -> dict[str, Any]:
        # The host travels to Ray tasks (get_output reads through it); a lock does not.
        state = self.__dict__.copy()
        del state["_replacing"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._replacing = threading.Lock()

    @property
    def actor(self) -> Any:
        """The first engine actor (the one that runs gc and, with queue limits, every workflow)."""
        return self.actors[0]

    def actor_for(self, workflow_id: str) -> Any:
        """The engine actor this host sends ``workflow_id`` to."""
        return self.actors[self._index_for(workflow_id)]

    def _index_for(self, workflow_id: str) -> int:
        return 0 if self.limited else shard_of(workflow_id, self.engines)

    def configure(self, max_running: int | None, max_pending: int | None) -> None:
        import ray

        # Every engine gets the limits (the last init's apply, as with one engine); this host then
        # sends everything to the first engine while limits are set (``actor_for``).
        actors = [self._available(index) for index in range(self.engines)]
        ray.get([actor.configure.remote(max_running, max_pending) for actor in actors])
        self.limited = max_running is not None or max_pending is not None

    def configure_gc(self, start_collector: Callable[[], Any] | None) -> None:
        """Run gc periodically in the first engine actor, which outlives this driver."""
        import ray

        if start_collector is None:
            return  # another driver may have asked the shared engine actor for gc: leave it
        ray.get(self._available(0).configure_gc.remote(start_collector))

    def run_async(
        self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]
    ) -> Any:
        """Start the workflow in the engine actor; ``context`` (the caller's trace context, say)
        goes with it, as a step's goes to its worker."""
        import ray

        actor = self._available(self._index_for(workflow_id))
        try:
            # Started inside the engine actor before this returns: the driver may exit right away.
            # The steps run under this driver's job's runtime_env, as tasks it submitted would;
            # the engine belongs to another job (``_engine_home``), whose they would get instead.
            number = ray.get(
                actor.start.remote(storage_url, workflow_id, graph, dict(context), _job_runtime_env())
            )
        except ray.exceptions.RayTaskError as error:
            raise error.cause if isinstance(error.cause, Exception) else error from None
        return actor.result.remote(number)

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None, context: Mapping[str, str]) -> Any:
        import ray

        for attempt in range(ENGINE_RESTARTS_FOLLOWED + 1):
            try:
                return ray.get(self.run_async(storage_url, workflow_id, graph, context))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnschedulableError):
                # The engine actor died with the workflow in it. It restarts (max_restarts=-1), or,
                # its node gone, is created again elsewhere; running the workflow there again
                # resumes it from its checkpoints (or returns its stored result), so the caller
                # gets its output, not the actor's death.
                if attempt == ENGINE_RESTARTS_FOLLOWED:
                    raise
            except ray.exceptions.RayTaskError as error:
                cause = error.cause
                if isinstance(cause, Exception):
                    raise cause from cause.__cause__
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        """Signal the workflow in whichever engine actor runs it (another driver's count may differ)."""
        answers = self._ask_every_engine("cancel", storage_url, workflow_id)
        return any(bool(answer) for answer in answers)

    def driving(self, storage_url: str) -> frozenset[str]:
        """The ids of ``storage_url`` that any engine actor of the cluster was asked to run and runs."""
        answers = self._ask_every_engine("driving", storage_url)
        return frozenset().union(*answers)

    def _available(self, index: int) -> Any:
        """Engine ``index``, waited for while it restarts, and created again if it died for good.

        An engine dies for good when its node is gone (its hard affinity cannot be met elsewhere),
        or when someone killed it without restart; either way it drives nothing any more, and a
        new one under the same name takes its place. Another driver may replace it at the same
        moment: ``get_if_exists`` makes both use one actor.
        """
        import ray

        for attempt in range(ENGINE_RESTARTS_FOLLOWED + 1):
            actor = self.actors[index]
            try:
                _wait_until_available(actor)
                return actor
            except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnschedulableError):
                # Unschedulable: its restart found the node of its hard affinity gone.
                if attempt == ENGINE_RESTARTS_FOLLOWED:
                    raise
            with self._replacing:
                if self.actors[index] is actor:  # not replaced by another thread meanwhile
                    self.actors[index] = self._create(index, _alive_nodes())
        raise AssertionError("unreachable")  # pragma: no cover

    def _create(self, index: int, nodes: list[str]) -> Any:
        """Engine ``index`` (another driver's, if it made one first), on a node of its own if any.

        Made by the cluster's engine factory, so that it and its steps belong to the home's job,
        which outlives this driver (``_engine_home``); by this driver if the factory cannot be
        had (its steps then start on new workers once this driver has exited).
        """
        import ray

        options: dict[str, Any] = {
            "name": engine_actor_name(index),
            "namespace": ENGINE_NAMESPACE,
            "lifetime": "detached",
            "get_if_exists": True,
            "max_restarts": -1,
            "num_cpus": 0,
            # An asyncio actor: how many calls may wait at once (no thread each).
            "max_concurrency": 100_000,
        }
        if len(nodes) > 1:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # Hard: Ray places an actor that needs no resources on a random node whatever a
            # *soft* affinity asks (both engines shared a node in half the runs of a 2-node test).
            node = _least_used(nodes, self._engine_nodes(besides=index), index)
            self._pinned[index] = node
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        for fresh in (False, True):
            factory = self._engine_factory(fresh)
            if factory is None:
                break
            try:
                return ray.get(
                    factory.create.remote(EngineActor, options, (self._executor_name,)),
                    timeout=FACTORY_TIMEOUT,
                )
            except ray.exceptions.RayActorError:
                continue  # the factory's job ended (its home restarted, on another node): ask again
            except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as error:
                _log.warning("the engine factory did not make %s (%s); made here", options["name"], error)
                break
        return self._actor_class.options(**options).remote(self._executor_name)

    def _engine_factory(self, fresh: bool = False) -> Any:
        """The cluster's engine factory (``fresh``: asked of the home again), or None if the home
        could not give one; after that this host makes its engines itself, not waiting again."""
        if fresh and self._factory is not None:
            self._factory, self._factory_asked = None, False
        if not self._factory_asked:
            self._factory_asked = True
            try:
                self._factory = engine_factory()
            except Exception as error:  # any failure: the engines are made here, as before the home
                _log.warning(
                    "durably's engine home did not start (%s: %s); the engine actors are created by "
                    "this driver, and their steps start on new workers once it has exited",
                    type(error).__name__,
                    error,
                )
        return self._factory

    def _engine_nodes(self, besides: int) -> list[str]:
        """The nodes this host's engines other than ``besides`` run on (those that answer)."""
        import ray

        found = []
        for index, actor in enumerate(self.actors):
            if index == besides or actor is None:
                continue
            if index in self._pinned:
                found.append(self._pinned[index])
                continue
            try:
                _wait_until_available(actor, timeout=30.0)
                found.append(str(ray.get(actor.node_id.remote(), timeout=30.0)))
            except (
                ray.exceptions.RayActorError,
                ray.exceptions.ActorUnschedulableError,
                ray.exceptions.GetTimeoutError,
            ):
                continue  # dead or unreachable: it holds no node
        return found

    def _ask_every_engine(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` on every engine actor of the cluster, those of other counts included."""
        import ray

        answers = []
        for actor in self._every_engine():
            try:
                _wait_until_available(actor)
                answers.append(ray.get(getattr(actor, method).remote(*args)))
            except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnschedulableError):
                continue  # dead for good (killed, or its node gone): it runs nothing
        return answers

    def _every_engine(self) -> list[Any]:
        """Handles on every engine actor of the cluster: this host's and any that other drivers made."""
        import ray

        known = {engine_actor_name(index): actor for index, actor in enumerate(self.actors)}
        listed = {
            entry["name"]
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry.get("namespace") == ENGINE_NAMESPACE and _ENGINE_NAME.fullmatch(entry["name"])
        }
        handles = [known[name] for name in sorted(known)]
        for name in sorted(listed - set(known)):
            try:
                handles.append(ray.get_actor(name, namespace=ENGINE_NAMESPACE))
            except ValueError:
                continue  # gone since it was listed
        return handles


def _job_runtime_env() -> dict[str, Any] | None:
    """This process's Ray job's runtime_env (its packages already uploaded), None if it has none."""
    import ray

    runtime_env = dict(ray.get_runtime_context().runtime_env)
    return runtime_env or None


def _named_engine(index: int) -> Any:
    """The engine actor ``index`` of the cluster if it exists (made by any driver), else None."""
    import ray

    try:
        return ray.get_actor(engine_actor_name(index), namespace=ENGINE_NAMESPACE)
    except ValueError:
        return None


def _alive_nodes() -> list[str]:
    """The ids of the cluster's alive nodes, in a fixed order (every driver computes the same)."""
    import ray

    # Ray does not annotate it: name its type here rather than call it untyped.
    list_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes
    return sorted(str(node["NodeID"]) for node in list_nodes() if node.get("Alive"))


def _least_used(nodes: list[str], used: list[str], index: int) -> str:
    """The node of ``nodes`` that holds the fewest of ``used``; among equals, the one at
    ``index`` modulo their count, so that engines created at once spread in a fixed order."""
    counts = Counter(used)
    fewest = min(counts[node] for node in nodes)
    candidates = [node for node in nodes if counts[node] == fewest]
    return candidates[index % len(candidates)]


def _wait_until_available(actor: Any, timeout: float = 120.0) -> None:
    """Block while the engine actor restarts (after it crashed), so calls are not lost to it."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        try:
            protocol = ray.get(actor.ping.remote(), timeout=timeout)
            break
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if protocol is True or protocol != ENGINE_PROTOCOL:
        _refuse_other_version(1 if protocol is True else protocol)


def _refuse_other_version(protocol: Any) -> None:
    """Name the engine actor an older (or newer) durably left in the cluster, and the way out."""
    raise WorkflowError(
        f"an engine actor of this Ray cluster (namespace {ENGINE_NAMESPACE!r}, one of "
        f"{ENGINE_ACTOR_NAME!r}, {ENGINE_ACTOR_NAME + '-<i>'!r}) was started by another durably "
        f"version: it speaks engine protocol {protocol!r}, this process {ENGINE_PROTOCOL}. Run the "
        "same durably version in every driver, or restart the engine actors with the new version: "
        f"ray.kill(ray.get_actor({ENGINE_ACTOR_NAME!r}, namespace={ENGINE_NAMESPACE!r})) for each, "
        "then resume the workflows they were driving (durably list --status RESUMABLE)."
    )
