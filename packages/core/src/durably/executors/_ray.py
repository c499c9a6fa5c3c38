"""The ``ray`` executor: each step is a Ray task; values flow between tasks as ObjectRefs."""

from __future__ import annotations

import contextlib
import operator
import signal
import threading
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import ray

from durably._options import StepOptions
from durably._protocol import StepTask
from durably._runner import EXECUTION, Execution, execute_step
from durably.events._hosts import events_actor


def _crashed_attempts() -> int | None:
    """How many earlier attempts of the current Ray task crashed (Ray retried them), None if unknown.

    Not in Ray's public API (nor its type stubs); the core worker has it since Ray 2.x.
    """
    core_worker = getattr(ray._private.worker.global_worker, "core_worker", None)
    attempt = getattr(core_worker, "get_current_task_attempt_number", None)
    return int(attempt()) if attempt is not None else None


def _let_cancel_interrupt() -> None:
    """Let ``ray.cancel`` interrupt the step this worker is about to run.

    Ray's cancel raises KeyboardInterrupt in a running task through Python's SIGINT handling,
    which does nothing while SIGINT is ignored, and a cluster started from a script's background
    job (``ray start ... &``), under ``nohup`` or by some service managers hands an ignored SIGINT
    down to every worker: ``workflow.cancel`` then leaves the step running for ever. A step runs
    in its worker's main thread, the only one that may set a handler.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def inherit_runtime_env(inherited: Mapping[str, Any], own: Mapping[str, Any] | None) -> dict[str, Any]:
    """A task's runtime_env as Ray makes it from its parent's: its own fields replace the parent's,
    but ``env_vars`` merge (its own win)."""
    merged = dict(inherited)
    for field, value in (own or {}).items():
        parent_vars = merged.get("env_vars")
        if field == "env_vars" and isinstance(parent_vars, Mapping) and isinstance(value, Mapping):
            merged[field] = {**parent_vars, **value}
        else:
            merged[field] = value
    return merged


def execute_ray_step(task: StepTask, *inputs: Any) -> tuple[Any, Any]:
    """``execute_step`` in a Ray task, told about the attempts of it Ray retried after a crash.

    A retried task (its worker died) looks for its checkpoint before running the step again.
    A step has one ``max_retries`` budget for crashes (retried by Ray) and exceptions (retried
    in the step), as Ray's tasks had; Ray's attempt number is the count of the crashed ones, and
    the task id, the same for each of Ray's retries, keys the record of the attempts that raised
    in a crashed worker (``_runner.Execution``).
    """
    _let_cancel_interrupt()
    crashed = _crashed_attempts()
    execution = Execution(ray.get_runtime_context().get_task_id() or "", crashed or 0)  # unknown: 0
    token = EXECUTION.set(execution)
    try:
        return execute_step(task, *inputs, retried=crashed != 0)  # unknown: look anyway
    finally:
        EXECUTION.reset(token)


#: Configured remote functions kept at most: a workflow's steps with equal options share one, and
#: each code snapshot needs its own; past this the cache starts again (a miss costs ~50 µs).
CONFIGURED_MAX = 256


def _frozen(value: Any) -> Hashable:
    """``value`` (Ray options: dicts, lists and scalars) as a hashable key equal for equal values."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    hash(value)  # TypeError: no key by value
    hashable: Hashable = value
    return hashable


def _options_key(options: StepOptions) -> tuple[Hashable, StepOptions | None]:
    """What of a step's options shapes its Ray task, by value: each step of a loop has its own
    options object (unpickled with its continuation) and they all share one configured remote.
    Options that cannot be keyed by value are keyed by identity (and kept, so the id stays theirs)."""
    try:
        return (options.max_retries, _frozen(options.ray_options)), None
    except TypeError:
        return ("object", id(options)), options


def _wait_clock_task() -> None:
    """Does nothing: a ``workflow.wait`` step's timeout starts when this task starts (Ray 1.x)."""


class RayExecutor:
    """Submits ``execute_step`` as a two-result Ray task with the step's Ray options."""

    name = "ray"
    has_cluster_host = True
    supports_runtime_env = True

    def __init__(self) -> None:
        self._remote = ray.remote(num_returns=2)(execute_ray_step)
        # Zero CPUs, as Ray 1.x's wait task had: a wait is never held back by the steps it watches.
        self._clock = ray.remote(num_cpus=0, max_retries=0)(_wait_clock_task)
        self._configured: dict[tuple[Hashable, int, int], tuple[tuple[Any, ...], Any]] = {}
        self._events: Any = None
        self._event_calls: dict[Any, tuple[str, str, str, str]] = {}
        # Outcomes fetched together by ``wait``, per engine thread (one wait, then a result for
        # each ready handle); the next wait of the thread drops whatever was not asked for.
        self._fetched = threading.local()

    def _remote_for(self, options: StepOptions, runtime_env: Any, inherited_env: Any) -> Any:
        # A workflow's snapshot (or inherited env) is the same dict for each of its steps.
        options_key, kept = _options_key(options)
        key = (options_key, id(runtime_env), id(inherited_env))
        anchors = (kept, runtime_env, inherited_env)
        cached = self._configured.get(key)
        # Ids of freed objects are reused: the cached entry must hold these very objects.
        if cached is not None and all(map(operator.is_, cached[0], anchors)):
            return cached[1]
        ray_options = dict(options.ray_options)
        if runtime_env is not None:
            # The workflow's code snapshot wins over a step's own runtime_env: the code recorded
            # at the first run is what every step of the workflow runs.
            ray_options["runtime_env"] = dict(runtime_env)
        elif inherited_env:
            ray_options["runtime_env"] = inherit_runtime_env(inherited_env, ray_options.get("runtime_env"))
        # Application errors are retried inside the step (with backoff); Ray retries only
        # system failures, such as the worker process dying, up to the same limit.
        remote = self._remote.options(max_retries=options.max_retries, retry_exceptions=False, **ray_options)
        if len(self._configured) >= CONFIGURED_MAX:
            self._configured.clear()
        self._configured[key] = (anchors, remote)
        return remote

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        remote = self._remote_for(task.spec.options, task.runtime_env, task.inherited_env)
        value, info = remote.remote(task, *inputs)
        return value, info

    def wait_clock(self) -> Callable[[], bool]:
        """A check that turns True once a zero-CPU task submitted now has run on a worker.

        Ray 1.x ran ``workflow.wait`` as such a task and counted its timeout from there; the
        engine does the same with this clock (a failed task counts as started).
        """
        started = self._clock.remote()
        return lambda: bool(ray.wait([started], timeout=0)[0])

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
        fetched: dict[Any, Any] = {}
        if len(ready) > 1:
            # One core-worker call for every ready outcome instead of one each.
            with contextlib.suppress(Exception):  # a failed step among them: ``result`` raises
                fetched = dict(zip(ready, ray.get(ready), strict=True))
        self._fetched.outcomes = fetched
        return list(ready)

    def result(self, handle: Any) -> Any:
        self._event_calls.pop(handle, None)
        fetched: dict[Any, Any] = getattr(self._fetched, "outcomes", {})
        if handle in fetched:
            return fetched.pop(handle)
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
