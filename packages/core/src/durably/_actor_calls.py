"""Applying calls to virtual actors: the optimistic transaction, the per-process cache, and where calls run.

A mutating call reads the head record (the latest committed state), applies the method to a
fresh copy of that state and commits ``log/<head + 1>`` with ``put_if_absent``. If another
writer took that seq first, the call re-reads the new head and is applied again. Each process
keeps the head it last saw and probes forward (``get`` of head + 1) instead of listing the log;
the listing is only for recovery. Calls on one actor are applied one at a time, in submission
order: by a per-actor queue in the caller's process (``local`` executor), or by one Ray actor
per virtual actor (``ray`` executor) that keeps the state cache warm.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import contextvars
import hashlib
import os
import pickle
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from durably import _codec
from durably._actor_store import COMPACT_EVERY, KEEP, ActorStore, CallRecord
from durably._errors import WorkflowError, WorkflowExecutionError, WorkflowNotFoundError
from durably._plugins import hook, propagation_context
from durably._resolve import open_storage
from durably._step import StepFunction, Workflow
from durably.storage import KeyNotFound

#: Executors whose mutating calls run in a per-actor Ray actor; any other runs them in-process.
RAY_EXECUTORS = {"ray"}
#: A process that fell further behind than this many commits re-reads the log by listing it.
MAX_PROBE = 64
#: A Ray actor hosting a virtual actor exits after this long without calls (seconds).
HOST_IDLE_SECONDS = float(os.environ.get("DURABLY_ACTOR_HOST_IDLE_SECONDS", "300"))
HOST_NAMESPACE = "durably"
_RETRY_HOST_SECONDS = 120.0


class ActorNotFoundError(WorkflowNotFoundError):
    """No virtual actor with that id exists in the configured storage."""

    def __init__(self, actor_id: str) -> None:
        super().__init__(actor_id)
        self.actor_id = actor_id
        self.args = (f"no virtual actor with id {actor_id!r} in this storage",)


class ActorMethodError(WorkflowExecutionError):
    """A virtual actor's method raised; the actor's state is unchanged and ``__cause__`` is the error."""

    def __init__(self, actor_id: str, method: str, cause: BaseException | str) -> None:
        super().__init__(actor_id, method, cause)
        self.actor_id = actor_id
        self.method = method
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        self.args = (f"method {method!r} of virtual actor {actor_id!r} failed: {reason}",)

    def __str__(self) -> str:
        return str(self.args[0])


# -- the class: state, methods ----------------------------------------------------------------
def get_state(instance: Any) -> Any:
    """The actor's state: its own ``__getstate__`` if the class defines one, else ``__dict__``."""
    getstate = getattr(type(instance), "__getstate__", None)
    if getstate is not None and getstate is not getattr(object, "__getstate__", None):
        return instance.__getstate__()
    return dict(instance.__dict__)


def restore(cls: type, state: Any) -> Any:
    """An instance of ``cls`` holding ``state``, built without running ``__init__``."""
    instance: Any = object.__new__(cls)
    if getattr(cls, "__setstate__", None) is not None:
        instance.__setstate__(state)
    else:
        instance.__dict__.update(state)
    return instance


_methods_cache: weakref.WeakKeyDictionary[type, dict[str, tuple[Callable[..., Any], bool]]] = (
    weakref.WeakKeyDictionary()
)


def actor_methods(cls: type) -> dict[str, tuple[Callable[..., Any], bool]]:
    """Name -> (function, readonly) of every method callable on an actor of ``cls``."""
    cached = _methods_cache.get(cls)
    if cached is not None:
        return cached
    methods = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, value in vars(klass).items():
            if name.startswith("__"):
                continue
            func = getattr(value, "func", value) if isinstance(value, MethodDescriptor) else value
            if callable(func) and not isinstance(func, type) and hasattr(func, "__code__"):
                methods[name] = (func, bool(getattr(func, "__durably_readonly__", False)))
    _methods_cache[cls] = methods
    return methods


class MethodDescriptor:
    """Replaces each method on an actor class, so that ``self.other.step(...)`` works inside methods."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.func
        return BoundMethod(instance, self.func)


class BoundMethod:
    """A method of the running actor's instance: call it directly, or ``.step()`` it as a tail call."""

    def __init__(self, instance: Any, func: Callable[..., Any]) -> None:
        self.instance = instance
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(self.instance, *args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Workflow[Any]:
        """A step future of this method on the running actor (its result becomes the call's result)."""
        running = current_call.get()
        if running is None or running.instance is not self.instance:
            raise RuntimeError(
                f"self.{self.func.__name__}.step() works only inside a running method of a virtual actor"
            )
        return method_step(running.target, self.func.__name__, None, {}, args, kwargs)


# -- where a call is -------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Which actor a call goes to and how its calls run; small and picklable (handles carry it)."""

    storage_url: str
    executor: str
    actor_id: str


@dataclass
class RunningCall:
    target: Target
    instance: Any
    readonly: bool


current_call: contextvars.ContextVar[RunningCall | None] = contextvars.ContextVar(
    "durably_actor_call", default=None
)


# -- steps that call actor methods -------------------------------------------------------------
def _actor_method_step(
    target: Target, method: str, call_id: str, *args: Any, **kwargs: Any
) -> Any:  # pragma: no cover - runs inside steps
    return call(target, method, args, kwargs, call_id)


def _gather_arguments(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


class ActorMethodStep(StepFunction[Any]):
    """The step function behind ``handle.method.step(...)``; its call id is fixed when the step is built."""

    def __init__(self, target: Target, method: str, options: Any) -> None:
        super().__init__(_actor_method_step, options)
        self.target = target
        self.method = method

    @property
    def default_name(self) -> str:
        return self.step_options.name or f"{self.target.actor_id}.{self.method}".replace("/", "_")


def method_step(
    target: Target, method: str, call_id: str | None, options: dict[str, Any], args: Any, kwargs: Any
) -> Workflow[Any]:
    from durably._options import build_options

    # The call id is part of the step's stored arguments, so a re-run of the step finds its commit.
    function = ActorMethodStep(target, method, build_options(None, **options))
    return Workflow(function, (target, method, call_id or new_call_id(), *args), kwargs)


def new_call_id() -> str:
    return uuid.uuid4().hex


# -- the per-process cache and the transaction -----------------------------------------------
_classes: dict[str, type] = {}
_classes_lock = threading.Lock()


def _load_class(payload: bytes) -> type:
    digest = hashlib.sha256(payload).hexdigest()
    cls = _classes.get(digest)
    if cls is None:
        cls = _codec.loads(payload)
        with _classes_lock:
            _classes[digest] = cls  # type: ignore[assignment]
    return cls  # type: ignore[return-value]


class ActorCore:
    """One process's view of one actor: the head it last saw, recent call ids, and the commit protocol."""

    def __init__(self, storage_url: str, actor_id: str) -> None:
        self.store = ActorStore(open_storage(storage_url), actor_id)
        self.actor_id = actor_id
        self._lock = threading.Lock()
        self._cls: type | None = None
        self._incarnation: str | None = None
        self._head: CallRecord | None = None
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()

    # -- reading the head ---------------------------------------------------------------------
    def _load_identity(self) -> None:
        try:
            meta, payload = self.store.load_class_record()
        except KeyNotFound:
            raise ActorNotFoundError(self.actor_id) from None
        self._incarnation = str(meta["incarnation"])
        self._cls = _load_class(payload)

    def _remember(self, record: CallRecord) -> None:
        self._recent[record.call_id] = record.seq
        while len(self._recent) > KEEP + COMPACT_EVERY:
            self._recent.popitem(last=False)

    def _recover(self) -> None:
        """Find the head by listing the log (cold cache, or this process fell far behind)."""
        self._load_identity()
        self._head = None
        self._recent.clear()
        for seq in self.store.stored_seqs():
            record = self.store.read(seq)
            if record is None or record.incarnation != self._incarnation:
                continue
            self._remember(record)
            if self._head is None or record.seq > self._head.seq:
                self._head = record
        if self._head is None:
            raise ActorNotFoundError(self.actor_id)

    def _on_foreign_record(self, record: CallRecord) -> None:
        """A record of another incarnation ahead: ours is stale, or it is a deleted one's leftover."""
        known = self._incarnation
        self._load_identity()
        if self._incarnation != known:
            self._recover()  # the actor was deleted and created again since this process looked
        else:
            self.store.forget(record.seq)  # written by a deleted incarnation's late writer

    def actor_class(self) -> type:
        with self._lock:
            if self._cls is None:
                self._load_identity()
            assert self._cls is not None
            return self._cls

    def sync(self, verify: bool = True) -> tuple[type, CallRecord]:
        """The class and the latest committed record, probing forward from what this process saw.

        With ``verify``, a head that nothing followed is checked to still exist: if it was
        compacted away, this process fell behind and re-reads the log. A writer skips this, as
        its commit checks the same thing afterwards.
        """
        with self._lock:
            if self._head is None:
                self._recover()
            for probe in range(MAX_PROBE):
                assert self._head is not None
                record = self.store.read(self._head.seq + 1)
                if record is None:
                    if verify and probe == 0 and not self.store.has(self._head.seq):
                        self._recover()
                    break
                if record.incarnation != self._incarnation:
                    self._on_foreign_record(record)
                    continue
                self._head = record
                self._remember(record)
            else:
                self._recover()
            assert self._cls is not None and self._head is not None
            return self._cls, self._head

    def forget_cache(self) -> None:
        with self._lock:
            self._head = None
            self._recent.clear()

    def committed_result(self, call_id: str) -> tuple[bool, Any]:
        """(True, result) when a call with this id is among the recent commits, else (False, None)."""
        with self._lock:
            seq = self._recent.get(call_id)
        if seq is None:
            return False, None
        record = self.store.read(seq)
        if record is None or record.call_id != call_id:
            raise WorkflowError(
                f"call {call_id!r} of virtual actor {self.actor_id!r} was committed at seq {seq}, "
                "but its record has been compacted away, so its result is gone"
            )
        return True, _codec.loads(record.result)

    # -- applying a call ----------------------------------------------------------------------
    def apply(
        self,
        target: Target,
        method: str,
        args: Any,
        kwargs: Any,
        call_id: str,
        context: Mapping[str, str] | None = None,
    ) -> Any:
        """Apply a mutating call exactly once and return its result (see the module docstring)."""
        with _observed_call(self.actor_id, method, False, context):
            return self._apply(target, method, args, kwargs, call_id)

    def _apply(self, target: Target, method: str, args: Any, kwargs: Any, call_id: str) -> Any:
        while True:
            cls, head = self.sync(verify=False)
            found, result = self.committed_result(call_id)
            if found:
                return result
            func = _find_method(cls, self.actor_id, method)
            instance = restore(cls, _codec.loads(head.state))
            seq = head.seq + 1
            token = current_call.set(RunningCall(target, instance, readonly=False))
            try:
                result = func(instance, *args, **kwargs)
                result, subworkflows = _finish_returned_steps(self, target, instance, result, seq, call_id)
            except Exception as error:
                raise ActorMethodError(self.actor_id, method, error) from error
            finally:
                current_call.reset(token)
            record = CallRecord(
                seq,
                call_id,
                method,
                head.incarnation,
                _codec.dumps(get_state(instance)),
                _codec.dumps(result),
            )
            if not self.store.append(record):
                continue  # another writer committed this seq: re-read the head and apply again
            if not self.store.has(head.seq):
                # Our base was compacted (or deleted) while we worked: the slot we wrote is a stale one.
                self.store.forget(seq)
                self.forget_cache()
                continue
            with self._lock:
                if self._head is None or self._head.seq < seq:
                    self._head = record
                self._remember(record)
            if seq % COMPACT_EVERY == 0:
                self.store.compact(seq)
            _delete_workflows(self.store, subworkflows)
            return result

    def apply_readonly(
        self, target: Target, method: str, args: Any, kwargs: Any, context: Mapping[str, str] | None = None
    ) -> Any:
        """Run a read-only method on the latest committed state; changes are dropped with a warning."""
        with _observed_call(self.actor_id, method, True, context):
            return self._apply_readonly(target, method, args, kwargs)

    def _apply_readonly(self, target: Target, method: str, args: Any, kwargs: Any) -> Any:
        cls, head = self.sync()
        func = _find_method(cls, self.actor_id, method)
        instance = restore(cls, _codec.loads(head.state))
        before = _codec.dumps(get_state(instance))
        token = current_call.set(RunningCall(target, instance, readonly=True))
        try:
            result = func(instance, *args, **kwargs)
        except Exception as error:
            raise ActorMethodError(self.actor_id, method, error) from error
        finally:
            current_call.reset(token)
        if _codec.dumps(get_state(instance)) != before:
            warnings.warn(
                f"read-only method {method!r} of virtual actor {self.actor_id!r} changed the actor's state; "
                "the change is not persisted (remove @virtual_actor.readonly to make it a mutating method)",
                RuntimeWarning,
                stacklevel=2,
            )
        return result


@contextlib.contextmanager
def _observed_call(
    actor_id: str, method: str, readonly: bool, context: Mapping[str, str] | None
) -> Iterator[None]:
    """Tell the plugins that a call is applied here, and how it ended."""
    context = context or {}
    hook().durably_actor_call_started(actor_id=actor_id, method=method, readonly=readonly, context=context)
    started = time.monotonic()
    error: BaseException | None = None
    try:
        yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        hook().durably_actor_call_finished(
            actor_id=actor_id,
            method=method,
            readonly=readonly,
            duration=time.monotonic() - started,
            error=error,
            context=context,
        )


def _find_method(cls: type, actor_id: str, method: str) -> Callable[..., Any]:
    methods = actor_methods(cls)
    if method not in methods:
        raise AttributeError(
            f"virtual actor class {cls.__name__!r} (actor {actor_id!r}) has no method {method!r}"
        )
    return methods[method][0]


def subworkflow_id(actor_id: str, seq: int, call_id: str, index: int) -> str:
    """The id of a sub-workflow a call runs: the same for a retry of the same call on the same state."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=5).hexdigest()
    return f"{actor_id[:150]}.{seq}.{digest}.{index}"


def _finish_returned_steps(
    core: ActorCore, target: Target, instance: Any, result: Any, seq: int, call_id: str
) -> tuple[Any, list[str]]:
    """Turn a returned step future into its value: run it as a durable workflow, or apply a tail call.

    ``self.other.step(...)`` as the returned future is applied here, on the same in-flight state;
    its arguments (which may be step futures) are computed by a sub-workflow first.
    """
    from durably import _api

    ran: list[str] = []
    while isinstance(result, Workflow):
        workflow_id = subworkflow_id(core.actor_id, seq, call_id, len(ran))
        function = result.function
        if isinstance(function, ActorMethodStep) and function.target.actor_id == core.actor_id:
            args, kwargs = _codec.loads_with(
                result.encoded_args, lambda pid, deps=result.dependencies: deps[pid[1]]
            )
            if result.dependencies:
                ran.append(workflow_id)
                args, kwargs = _api.run(
                    Workflow(StepFunction(_gather_arguments, function.step_options), args, kwargs),
                    workflow_id=workflow_id,
                )
            method = args[1]
            result = _find_method(type(instance), core.actor_id, method)(instance, *args[3:], **kwargs)
            continue
        _refuse_calls_to_self(core.actor_id, result)
        ran.append(workflow_id)
        result = _api.run(result, workflow_id=workflow_id)
    return result, ran


def _refuse_calls_to_self(actor_id: str, root: Workflow[Any]) -> None:
    """A sub-workflow that waits on its own actor would wait for the call that waits for it."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        function = node.function
        if isinstance(function, ActorMethodStep) and function.target.actor_id == actor_id:
            raise WorkflowError(
                f"a method of virtual actor {actor_id!r} returned a workflow with a step that calls "
                f"{actor_id!r} itself ({function.method!r}); it would wait for the call waiting for it. "
                f"Return self.{function.method}.step(...) as the method's result instead."
            )
        stack.extend(node.dependencies)


def _delete_workflows(store: ActorStore, workflow_ids: list[str]) -> None:
    from durably._store import WorkflowStore

    for workflow_id in workflow_ids:
        WorkflowStore(store.storage, workflow_id).delete()


_cores: dict[tuple[str, str], ActorCore] = {}
_cores_lock = threading.Lock()


def core_for(storage_url: str, actor_id: str) -> ActorCore:
    key = (storage_url, actor_id)
    core = _cores.get(key)
    if core is None:
        with _cores_lock:
            core = _cores.setdefault(key, ActorCore(storage_url, actor_id))
    return core


def drop_core(storage_url: str, actor_id: str) -> None:
    with _cores_lock:
        _cores.pop((storage_url, actor_id), None)


# -- local: a queue per actor in this process ------------------------------------------------
class _SerialQueue:
    """Runs submitted calls one at a time, in submission order, on a shared thread pool."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._pool = pool
        self._items: collections.deque[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._draining = False

    def submit(self, work: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._items.append((future, work))
            start = not self._draining
            self._draining = True
        if start:
            self._pool.submit(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    self._draining = False
                    return
                future, work = self._items.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as error:
                future.set_exception(error)


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=10_000, thread_name_prefix="durably-actor")
_queues: dict[tuple[str, str], _SerialQueue] = {}
_queues_lock = threading.Lock()


def _queue_for(target: Target) -> _SerialQueue:
    key = (target.storage_url, target.actor_id)
    queue = _queues.get(key)
    if queue is None:
        with _queues_lock:
            queue = _queues.setdefault(key, _SerialQueue(_pool))
    return queue


# -- ray: one Ray actor per virtual actor ---------------------------------------------------------
class ActorHost:
    """The Ray actor that applies one virtual actor's mutating calls, with its state cache kept warm.

    Single-threaded, so Ray runs each caller's calls in submission order. It exits after
    ``HOST_IDLE_SECONDS`` without calls; the next call starts a new one.
    """

    def __init__(self, storage_url: str, executor: str, actor_id: str) -> None:
        configure_worker(storage_url, executor)
        self.target = Target(storage_url, executor, actor_id)
        self.core = core_for(storage_url, actor_id)
        self._last_call = time.monotonic()
        self._busy = False
        threading.Thread(target=self._exit_when_idle, name="durably-actor-idle", daemon=True).start()

    def call(
        self, method: str, args: Any, kwargs: Any, call_id: str, context: Mapping[str, str] | None = None
    ) -> Any:
        self._busy = True
        try:
            return self.core.apply(self.target, method, args, kwargs, call_id, context)
        finally:
            self._busy = False
            self._last_call = time.monotonic()

    def ping(self) -> bool:
        return True

    def _exit_when_idle(self) -> None:
        import ray

        while True:
            time.sleep(min(5.0, HOST_IDLE_SECONDS))
            if not self._busy and time.monotonic() - self._last_call > HOST_IDLE_SECONDS:
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return


def configure_worker(storage_url: str, executor: str) -> None:
    """Point ``durably.workflow`` in a Ray worker at the caller's storage, unless it is set up already."""
    from durably import _api

    if _api._config is None:
        _api.init(storage=storage_url, executor=executor)


def host_name(target: Target) -> str:
    digest = hashlib.blake2b(f"{target.storage_url}\n{target.actor_id}".encode(), digest_size=12).hexdigest()
    return f"durably-actor-{digest}"


_hosts: dict[str, Any] = {}
_hosts_lock = threading.Lock()


def _host_for(target: Target) -> Any:
    import ray

    name = host_name(target)
    host = _hosts.get(name)
    if host is None:
        remote_class = ray.remote(num_cpus=0, max_concurrency=1)(ActorHost)  # type: ignore[call-overload]
        host = remote_class.options(  # type: ignore[attr-defined]
            name=name, namespace=HOST_NAMESPACE, lifetime="detached", get_if_exists=True, max_restarts=0
        ).remote(target.storage_url, target.executor, target.actor_id)
        with _hosts_lock:
            _hosts[name] = host
    return host


def _forget_host(target: Target) -> None:
    with _hosts_lock:
        _hosts.pop(host_name(target), None)


def stop_host(target: Target) -> None:
    """Stop the Ray actor hosting this virtual actor, if there is one (after the actor is deleted)."""
    import ray

    _forget_host(target)
    if not ray.is_initialized():
        return
    with contextlib.suppress(ValueError):  # no such actor
        ray.kill(ray.get_actor(host_name(target), namespace=HOST_NAMESPACE), no_restart=True)


def _readonly_remote(
    target: Target, method: str, args: Any, kwargs: Any, context: Mapping[str, str] | None = None
) -> Any:
    configure_worker(target.storage_url, target.executor)
    return core_for(target.storage_url, target.actor_id).apply_readonly(target, method, args, kwargs, context)


_readonly_tasks: Any = None


# -- calling ------------------------------------------------------------------------------------
def _refuse_own_mutating_call(target: Target, method: str) -> None:
    running = current_call.get()
    if running is not None and running.target.actor_id == target.actor_id and not running.readonly:
        raise RuntimeError(
            f"method {method!r} of virtual actor {target.actor_id!r} was called with .run() from inside "
            f"one of its own methods, which would wait for itself; call self.{method}(...) directly, "
            f"or return self.{method}.step(...)"
        )


def is_readonly(target: Target, method: str) -> bool:
    core = core_for(target.storage_url, target.actor_id)
    cls, _ = core.sync()
    _find_method(cls, target.actor_id, method)
    return actor_methods(cls)[method][1]


def call_async(target: Target, method: str, args: Any, kwargs: Any, call_id: str, readonly: bool) -> Any:
    """Start a call; a ray.ObjectRef with the ray executor, else a concurrent.futures.Future."""
    global _readonly_tasks
    core = core_for(target.storage_url, target.actor_id)
    context = propagation_context(None)
    if target.executor in RAY_EXECUTORS:
        import ray

        if readonly:
            if _readonly_tasks is None:
                _readonly_tasks = ray.remote(num_cpus=0)(_readonly_remote)
            return _readonly_tasks.remote(target, method, args, kwargs, context)
        _refuse_own_mutating_call(target, method)
        return _host_for(target).call.remote(method, args, kwargs, call_id, context)
    if readonly:
        return _pool.submit(
            contextvars.copy_context().run, core.apply_readonly, target, method, args, kwargs, context
        )
    _refuse_own_mutating_call(target, method)
    return _queue_for(target).submit(lambda: core.apply(target, method, args, kwargs, call_id, context))


def call(
    target: Target, method: str, args: Any, kwargs: Any, call_id: str, readonly: bool | None = None
) -> Any:
    """Apply a call and return its result; with Ray, a call lost with its host is sent again (same id)."""
    if readonly is None:
        readonly = is_readonly(target, method)
    core = core_for(target.storage_url, target.actor_id)
    context = propagation_context(None)
    if readonly:
        return core.apply_readonly(target, method, args, kwargs, context)
    _refuse_own_mutating_call(target, method)
    if target.executor not in RAY_EXECUTORS:
        return (
            _queue_for(target)
            .submit(lambda: core.apply(target, method, args, kwargs, call_id, context))
            .result()
        )
    import ray

    deadline = time.monotonic() + _RETRY_HOST_SECONDS
    while True:
        try:
            return ray.get(_host_for(target).call.remote(method, args, kwargs, call_id, context))
        except ray.exceptions.RayActorError:
            # The host died (or exited idle) with the call queued or running: start a new one and
            # send the same call again; if it had committed, its call id finds the result.
            _forget_host(target)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, Exception):
                raise cause from cause.__cause__
            raise


def pickle_class(cls: type) -> bytes:
    try:
        return _codec.dumps(cls)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"virtual actor class {cls.__name__!r} cannot be pickled: {exc}") from exc
