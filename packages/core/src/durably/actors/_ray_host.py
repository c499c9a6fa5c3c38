"""The cluster way to apply an actor's calls in order: one Ray actor per virtual actor, its cache warm."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from durably import _config
from durably._resolve import open_storage
from durably._snapshots import CodeSnapshot
from durably.actors._commit import core_for
from durably.actors._store import ActorStore
from durably.actors._target import Target

#: A Ray actor hosting a virtual actor exits after this long without calls (seconds).
HOST_IDLE_SECONDS = float(os.environ.get("DURABLY_ACTOR_HOST_IDLE_SECONDS", "300"))
HOST_NAMESPACE = "durably"


class HostCall(NamedTuple):
    """One mutating call as the host receives it: a single Ray argument.

    Ray serialises each top-level argument of an actor call on its own; six of them cost about
    as much again as the hop itself (benchmarks/PROFILE.md, item 5), one tuple costs one.
    """

    method: str
    args: Any
    kwargs: Any
    call_id: str
    context: Mapping[str, str] | None
    #: Whether anyone may send this call id again (``CallRecord.retryable``).
    retryable: bool


class ActorHost:
    """The Ray actor that applies one virtual actor's mutating calls, with its state cache kept warm.

    Single-threaded, so Ray runs each caller's calls in submission order. It exits after
    ``HOST_IDLE_SECONDS`` without calls; the next call starts a new one.
    """

    def __init__(self, target: Target) -> None:
        configure_worker(target.storage_url, target.executor)
        self.target = target
        self.core = core_for(target.storage_url, target.actor_id)
        self.core.compact_behind_calls()
        self._last_call = time.monotonic()
        self._busy = False
        threading.Thread(target=self._exit_when_idle, name="durably-actor-idle", daemon=True).start()

    def call(self, request: HostCall) -> Any:
        self._busy = True
        try:
            return self.core.apply(
                self.target,
                request.method,
                request.args,
                request.kwargs,
                request.call_id,
                request.context,
                request.retryable,
            )
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
    if not _config.is_set():
        _config.initialize(storage=storage_url, executor=executor)


def host_name(target: Target) -> str:
    digest = hashlib.blake2b(f"{target.storage_url}\n{target.actor_id}".encode(), digest_size=12).hexdigest()
    return f"durably-actor-{digest}"


#: The bound ``call`` method of each virtual actor's host this process knows, by target.
_hosts: dict[Target, Any] = {}
_hosts_lock = threading.Lock()
_remote_class: Any = None


def code_options(target: Target) -> dict[str, Any]:
    """Ray options that run the actor's code under its snapshot (none for an actor without one)."""
    storage = open_storage(target.storage_url)
    record = ActorStore(storage, target.actor_id).load_runtime_env()
    return {} if record is None else {"runtime_env": CodeSnapshot(storage, record).ray_env()}


def send(target: Target, request: HostCall) -> Any:
    """Send a mutating call to the virtual actor's host (started if needed); its ``ray.ObjectRef``."""
    call = _hosts.get(target)
    if call is None:
        call = _start_host(target)
    return call.remote(request)


def _start_host(target: Target) -> Any:
    """The ``call`` method of the target's host: the running one, or a new one."""
    import ray

    global _remote_class
    if _remote_class is None:  # one Ray actor class for every host: exported to the cluster once
        _remote_class = ray.remote(num_cpus=0, max_concurrency=1)(ActorHost)  # type: ignore[call-overload]
    host = _remote_class.options(
        name=host_name(target),
        namespace=HOST_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=0,
        **code_options(target),
    ).remote(target)
    with _hosts_lock:
        _hosts[target] = host.call
    return host.call


def forget_host(target: Target) -> None:
    with _hosts_lock:
        _hosts.pop(target, None)


def stop_host(target: Target) -> None:
    """Stop the Ray actor hosting this virtual actor, if there is one (after the actor is deleted)."""
    import ray

    forget_host(target)
    if not ray.is_initialized():
        return
    with contextlib.suppress(ValueError):  # no such actor
        ray.kill(ray.get_actor(host_name(target), namespace=HOST_NAMESPACE), no_restart=True)


def readonly_remote(
    target: Target, method: str, args: Any, kwargs: Any, context: Mapping[str, str] | None = None
) -> Any:
    configure_worker(target.storage_url, target.executor)
    core = core_for(target.storage_url, target.actor_id)
    return core.apply_readonly(target, method, args, kwargs, context)
