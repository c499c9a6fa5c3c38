"""The ``ray`` executor: each step is a Ray task; values flow between tasks as ObjectRefs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import ray

from durably._options import StepOptions
from durably._protocol import StepTask
from durably._runner import execute_step
from durably.events._hosts import events_actor


def _attempt_number() -> int:
    """Which attempt of the current Ray task this is (0 the first); Ray has no public API for it."""
    core_worker = getattr(ray._private.worker.global_worker, "core_worker", None)
    attempt = getattr(core_worker, "get_current_task_attempt_number", None)
    return int(attempt()) if attempt is not None else 1  # unknown: look for a checkpoint anyway


def execute_ray_step(task: StepTask, *inputs: Any) -> tuple[Any, Any]:
    """``execute_step`` in a Ray task; a task Ray retries (its worker died) looks for its checkpoint first."""
    return execute_step(task, *inputs, retried=_attempt_number() > 0)


class RayExecutor:
    """Submits ``execute_step`` as a two-result Ray task with the step's Ray options."""

    name = "ray"
    has_cluster_host = True

    def __init__(self) -> None:
        self._remote = ray.remote(num_returns=2)(execute_ray_step)
        self._configured: dict[int, tuple[StepOptions, Any]] = {}
        self._events: Any = None
        self._event_calls: dict[Any, tuple[str, str, str, str]] = {}

    def _remote_for(self, options: StepOptions) -> Any:
        cached = self._configured.get(id(options))
        if cached is not None and cached[0] is options:
            return cached[1]
        # Application errors are retried inside the step (with backoff); Ray retries only
        # system failures, such as the worker process dying, up to the same limit.
        remote = self._remote.options(
            max_retries=options.max_retries, retry_exceptions=False, **options.ray_options
        )
        self._configured[id(options)] = (options, remote)
        return remote

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        value, info = self._remote_for(task.spec.options).remote(task, *inputs)
        return value, info

    def submit_event(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        # One shared async actor holds every waiting event step of the cluster, with no CPU.
        if self._events is None:
            self._events = events_actor()
        caller = uuid.uuid4().hex
        value, info = self._events.run.options(num_returns=2).remote(task, caller, *inputs)
        self._event_calls[info] = (task.storage_url, task.workflow_id, task.spec.step_id, caller)
        return value, info

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        ready, _ = ray.wait(list(handles), num_returns=1, timeout=timeout)
        if ready and len(handles) > 1:
            ready, _ = ray.wait(list(handles), num_returns=len(handles), timeout=0)
        return list(ready)

    def result(self, handle: Any) -> Any:
        self._event_calls.pop(handle, None)
        return ray.get(handle)

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            try:
                # Not force: forced cancellation of many dependent tasks trips a Ray task-manager
                # check; a plain cancel interrupts the step's Python code, which is what we need.
                ray.cancel(handle, force=False)
            except ValueError:  # an event step: a call on the events actor, which cannot be forced
                ray.cancel(handle)
            except Exception:  # already finished, or its owner is gone
                pass
            event_call = self._event_calls.pop(handle, None)
            if event_call is not None:
                # ray.cancel may miss a call that has not reached the actor yet; withdrawing cannot.
                self._events.withdraw.remote(*event_call)

    def error_of(self, error: BaseException) -> BaseException:
        if isinstance(error, ray.exceptions.RayTaskError):
            cause = error.cause
            if isinstance(cause, BaseException):
                return cause
        return error
