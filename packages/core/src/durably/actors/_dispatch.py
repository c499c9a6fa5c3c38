"""Where an actor call runs and how its caller waits: the local queue, or the Ray host with retries."""

from __future__ import annotations

import contextvars
import time
from typing import Any

from durably._plugins import propagation_context
from durably.actors import _local_queue, _ray_host
from durably.actors._class import actor_methods, find_method
from durably.actors._commit import core_for
from durably.actors._target import Target, current_call

_RETRY_HOST_SECONDS = 120.0
_readonly_tasks: Any = None


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
    find_method(cls, target.actor_id, method)
    return actor_methods(cls)[method][1]


def call_async(
    target: Target, method: str, args: Any, kwargs: Any, call_id: str, readonly: bool, retryable: bool = True
) -> Any:
    """Start a call; a ray.ObjectRef with the ray executor, else a concurrent.futures.Future.

    ``retryable``: whether anyone may send this call id again (``CallRecord.retryable``).
    """
    global _readonly_tasks
    core = core_for(target.storage_url, target.actor_id)
    context = propagation_context(None)
    if target.has_cluster_host:
        import ray

        if readonly:
            if _readonly_tasks is None:
                _readonly_tasks = ray.remote(num_cpus=0)(_ray_host.readonly_remote)
            code = _ray_host.code_options(target)
            tasks = _readonly_tasks.options(**code) if code else _readonly_tasks
            return tasks.remote(target, method, args, kwargs, context)
        _refuse_own_mutating_call(target, method)
        return _ray_host.send(target, _ray_host.HostCall(method, args, kwargs, call_id, context, retryable))
    if readonly:
        return _local_queue.pool.submit(
            contextvars.copy_context().run, core.apply_readonly, target, method, args, kwargs, context
        )
    _refuse_own_mutating_call(target, method)
    return _local_queue.queue_for(target).submit(
        lambda: core.apply(target, method, args, kwargs, call_id, context, retryable)
    )


def call(
    target: Target,
    method: str,
    args: Any,
    kwargs: Any,
    call_id: str,
    readonly: bool | None = None,
    retryable: bool = True,
) -> Any:
    """Apply a call and return its result; with Ray, a call lost with its host is sent again (same id).

    ``retryable``: whether the caller may send this call id again later (``CallRecord.retryable``).
    """
    if readonly is None:
        readonly = is_readonly(target, method)
    core = core_for(target.storage_url, target.actor_id)
    context = propagation_context(None)
    if readonly:
        return core.apply_readonly(target, method, args, kwargs, context)
    _refuse_own_mutating_call(target, method)
    if not target.has_cluster_host:
        return (
            _local_queue.queue_for(target)
            .submit(lambda: core.apply(target, method, args, kwargs, call_id, context, retryable))
            .result()
        )
    import ray

    request = _ray_host.HostCall(method, args, kwargs, call_id, context, retryable)
    deadline = time.monotonic() + _RETRY_HOST_SECONDS
    while True:
        try:
            return ray.get(_ray_host.send(target, request))
        except ray.exceptions.RayActorError:
            # The host died (or exited idle) with the call queued or running: start a new one and
            # send the same call again; if it had committed, its call id finds the result.
            _ray_host.forget_host(target)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, Exception):
                raise cause from cause.__cause__
            raise
