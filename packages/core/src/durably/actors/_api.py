"""Virtual actors: durable, addressable objects whose state survives crashes, restarts and clusters.

``@workflow.virtual_actor`` turns a class into a :class:`VirtualActorClass`;
``get_or_create(actor_id, ...)`` constructs an actor once, ever, and returns an
:class:`ActorHandle`; ``handle.method.run(...)`` applies one durable call. How calls are
committed is in ``_commit``, where they run in ``_dispatch``; the keys are in ``_store``.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from durably import _codec, _config
from durably._errors import ActorMethodError, ActorNotFoundError, WorkflowError, WorkflowRunningError
from durably._ids import validate_workflow_id
from durably._lease import Lease
from durably._options import build_options
from durably._resolve import open_storage
from durably._snapshots import capture
from durably._step import Workflow, _pickle_user_code_by_value
from durably.actors._class import actor_methods, get_state, pickle_class
from durably.actors._commit import core_for, drop_core
from durably.actors._dispatch import call, call_async
from durably.actors._ray_host import stop_host
from durably.actors._steps import MethodDescriptor, method_step, new_call_id
from durably.actors._store import ActorStore, CallRecord, list_actor_entries
from durably.actors._target import Target

if TYPE_CHECKING:
    import ray

F = TypeVar("F", bound=Callable[..., Any])

#: How long ``get_or_create`` waits for another live process that is running the constructor.
CONSTRUCTION_WAIT_SECONDS = 600.0


class ActorMethod:
    """One method of one actor: ``.run(...)``, ``.run_async(...)``, ``.step(...)``, ``.options(...)``."""

    def __init__(
        self,
        handle: ActorHandle,
        name: str,
        readonly: bool,
        call_id: str | None = None,
        step_options: dict[str, Any] | None = None,
    ) -> None:
        self.handle = handle
        self.name = name
        self.readonly = readonly
        self.call_id = call_id
        self.step_options = step_options or {}

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Apply the call durably and return its result (a read-only method reads the latest state)."""
        call_id = self.call_id or new_call_id()
        retryable = self.call_id is not None  # a generated id is never sent again after this call
        return call(self.handle.target, self.name, args, kwargs, call_id, self.readonly, retryable)

    def run_async(self, *args: Any, **kwargs: Any) -> ray.ObjectRef[Any] | concurrent.futures.Future[Any]:
        """Start the call; a ``ray.ObjectRef`` of its result (a Future with the local executor)."""
        call_id = self.call_id or new_call_id()
        handle: ray.ObjectRef[Any] | concurrent.futures.Future[Any] = call_async(
            self.handle.target, self.name, args, kwargs, call_id, self.readonly, self.call_id is not None
        )
        return handle

    def step(self, *args: Any, **kwargs: Any) -> Workflow[Any]:
        """A lazy step future of this call, to use in a workflow (arguments may be step futures).

        The call happens once even if the step runs again: its call id is fixed here.
        """
        return method_step(self.handle.target, self.name, self.call_id, self.step_options, args, kwargs)

    def options(self, *, call_id: str | None = None, **step_options: Any) -> ActorMethod:
        """The same method with step options (as for ``@workflow.step``) and/or a fixed ``call_id``.

        A call id makes a retried call exactly-once: a call whose id was already committed returns
        the committed result instead of being applied again (found among the most recent commits).
        """
        merged = {**self.step_options, **step_options}
        build_options(None, **merged)  # fail here, not when the step runs
        return ActorMethod(self.handle, self.name, self.readonly, call_id or self.call_id, merged)

    def __repr__(self) -> str:
        kind = "read-only method" if self.readonly else "method"
        return f"<durably virtual actor {kind} {self.handle.actor_id}.{self.name}>"


class ActorHandle:
    """A handle on a virtual actor; its methods are attributes (``handle.incr.run()``). Picklable."""

    def __init__(self, target: Target, class_name: str, methods: dict[str, bool]) -> None:
        self.target = target
        self.class_name = class_name
        self._methods = methods

    @property
    def actor_id(self) -> str:
        return self.target.actor_id

    def ready(self) -> ray.ObjectRef[None] | concurrent.futures.Future[None]:
        """Ray 1.x's handle method: resolves once the actor is constructed and its state stored.

        ``get_or_create`` returns only after that, so it is resolved already; ``ray.get`` it
        (a ``concurrent.futures.Future`` with the local executor).
        """
        if self.target.has_cluster_host:
            import ray

            return ray.put(None)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods")
        if methods is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in methods:
            raise AttributeError(
                f"virtual actor class {self.class_name!r} (actor {self.actor_id!r}) has no method {name!r}; "
                f"its methods are: {', '.join(sorted(methods)) or 'none'}"
            )
        return ActorMethod(self, name, methods[name])

    def __reduce__(self) -> tuple[type[ActorHandle], tuple[Target, str, dict[str, bool]]]:
        return (ActorHandle, (self.target, self.class_name, self._methods))

    def __repr__(self) -> str:
        return f"<durably virtual actor {self.actor_id!r} ({self.class_name})>"


def _handle(target: Target, cls: type) -> ActorHandle:
    methods = {name: readonly for name, (_, readonly) in actor_methods(cls).items()}
    return ActorHandle(target, cls.__name__, methods)


def _target(actor_id: str) -> Target:
    cfg = _config.current()
    return Target(cfg.storage_url, cfg.executor, validate_workflow_id(actor_id), cfg.has_cluster_host)


def _check_state_methods(cls: type) -> None:
    """Refuse a class with only one of ``__getstate__``/``__setstate__`` (as 1.x did): the
    state one of them writes is not what the default of the other reads back."""
    own = {
        name for klass in cls.__mro__[:-1] for name in ("__getstate__", "__setstate__") if name in vars(klass)
    }
    if len(own) == 1:
        (defined,) = own
        missing = ({"__getstate__", "__setstate__"} - own).pop()
        raise ValueError(
            f"virtual actor class {cls.__name__!r} defines {defined} but not {missing}: "
            f"define both (the state one returns is what the other receives), or neither"
        )


class VirtualActorClass:
    """A class decorated with ``@workflow.virtual_actor``; make actors with ``get_or_create``."""

    def __init__(self, cls: type) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"@workflow.virtual_actor decorates a class, got {type(cls).__name__}")
        _check_state_methods(cls)
        for name, (func, _) in actor_methods(cls).items():
            setattr(cls, name, MethodDescriptor(func))
        _pickle_user_code_by_value(cls)  # type: ignore[arg-type]
        self.cls = cls
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def get_or_create(self, actor_id: str, *args: Any, **kwargs: Any) -> ActorHandle:
        """The actor with this id, constructed with the arguments if it does not exist yet.

        The constructor runs once, ever, even when several processes ask at the same time; for
        an existing actor the arguments are ignored. The class is stored with the actor, so
        ``workflow.get_actor(actor_id)`` works in processes that never imported it.
        """
        target = _target(actor_id)
        store = ActorStore(open_storage(target.storage_url), actor_id)
        if not store.is_listed():
            code = _config.current().runtime_env
            if code is not None:
                # Before the class: an actor that exists has its snapshot (the first creator's).
                store.save_runtime_env(capture(store.storage, code))
            _construct(store, self.cls, args, kwargs)
        cls = core_for(target.storage_url, actor_id).actor_class()
        if cls.__name__ != self.cls.__name__:
            raise ValueError(
                f"virtual actor {actor_id!r} exists and is a {cls.__name__}, not a {self.cls.__name__}"
            )
        return _handle(target, cls)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"virtual actor class {self.__name__!r} is not instantiated directly; "
            f"use {self.__name__}.get_or_create(actor_id, ...)"
        )

    def __repr__(self) -> str:
        return f"<durably virtual actor class {self.__qualname__}>"


def _construct(store: ActorStore, cls: type, args: Any, kwargs: Any) -> None:
    """Store the class and the constructed state (seq 0) unless another process did; then list the actor."""
    incarnation = new_call_id()
    if not store.create_class(cls.__name__, incarnation, pickle_class(cls)):
        meta, _ = store.load_class_record()
        incarnation = str(meta["incarnation"])
    lease = Lease(store.storage, store.key("creator"), store.actor_id)
    deadline = time.monotonic() + CONSTRUCTION_WAIT_SECONDS
    while not store.is_listed():
        if store.has(0):
            store.mark_listed(cls.__name__)
            return
        try:
            lease.acquire()
        except WorkflowRunningError:
            # Another live process is running the constructor: wait for its commit.
            if time.monotonic() > deadline:
                raise WorkflowError(
                    f"virtual actor {store.actor_id!r} is still being constructed by another process "
                    f"after {CONSTRUCTION_WAIT_SECONDS} s"
                ) from None
            time.sleep(0.05)
            continue
        try:
            if not store.has(0):
                _run_constructor(store, cls, incarnation, args, kwargs)
            store.mark_listed(cls.__name__)
        finally:
            lease.release()


def _run_constructor(store: ActorStore, cls: type, incarnation: str, args: Any, kwargs: Any) -> None:
    try:
        instance = cls(*args, **kwargs)
    except Exception as error:
        store.delete_class()  # so a corrected class can be stored by the next attempt
        raise ActorMethodError(store.actor_id, "__init__", error) from error
    state = _codec.dumps(get_state(instance))
    store.append_constructed(CallRecord(0, new_call_id(), "__init__", incarnation, state, _codec.dumps(None)))


class _VirtualActorDecorator:
    """``@workflow.virtual_actor`` on a class; ``@workflow.virtual_actor.readonly`` on a method."""

    def __call__(self, cls: type) -> VirtualActorClass:
        return VirtualActorClass(cls)

    @staticmethod
    def readonly(func: F) -> F:
        """Mark a method read-only: it reads the latest state, never blocks writers, and changes nothing."""
        func.__durably_readonly__ = True  # type: ignore[attr-defined]
        return func


virtual_actor = _VirtualActorDecorator()


def get_actor(actor_id: str) -> ActorHandle:
    """A handle on an existing actor; its class is loaded from storage, so no import is needed.

    Raises :class:`WorkflowNotFoundError` (an ``ActorNotFoundError``) for an unknown id.
    """
    target = _target(actor_id)
    store = ActorStore(open_storage(target.storage_url), actor_id)
    if not store.is_listed():
        raise ActorNotFoundError(actor_id)
    return _handle(target, core_for(target.storage_url, actor_id).actor_class())


def list_actors() -> list[tuple[str, str]]:
    """(actor id, class name) of every virtual actor in the storage, sorted by id."""
    return list_actor_entries(open_storage(_config.current().storage_url))


def delete_actor(actor_id: str) -> None:
    """Remove a virtual actor and all its history; raises WorkflowNotFoundError for an unknown id."""
    if not delete_actor_if_exists(actor_id):
        raise ActorNotFoundError(actor_id)


def delete_actor_if_exists(actor_id: str) -> bool:
    """Remove the actor if there is one (what ``workflow.delete`` falls back to); True when it did."""
    target = _target(actor_id)
    store = ActorStore(open_storage(target.storage_url), actor_id)
    if not store.is_listed() and next(store.keys(), None) is None:
        return False
    if target.has_cluster_host:
        stop_host(target)
    store.delete()
    drop_core(target.storage_url, actor_id)
    return True


__all__ = [
    "ActorHandle",
    "ActorMethod",
    "VirtualActorClass",
    "delete_actor",
    "get_actor",
    "list_actors",
    "virtual_actor",
]
