"""The code that runs inside a worker: load inputs, call the step, checkpoint the result.

The protocol it speaks (task, outcome, failure) is in ``_protocol``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from durably import _codec
from durably._datasets import materialize
from durably._graph import StepSpec, flatten
from durably._lease import check_held
from durably._plugins import hook
from durably._protocol import (
    DONE,
    UNRESOLVED,
    UNRESOLVED_INPUT,
    Continuation,
    StepFailure,
    StepOutcome,
    StepTask,
)
from durably._step import Workflow
from durably._store import (
    DURABLY_ATTEMPTS,
    DURABLY_STEP_TIMES,
    DURABLY_TRACEBACK,
    StoredOutput,
    WorkflowStore,
    loadable_error,
    open_workflow_store,
)

#: True while a step's function runs (``workflow.continuation`` then returns a continuation).
INSIDE_STEP: contextvars.ContextVar[bool] = contextvars.ContextVar("durably_inside_step", default=False)


@dataclass(frozen=True)
class Execution:
    """What an executor that retries a step after its worker crashed tells the step's run.

    ``key`` is the same for every retry of one execution (Ray's task id); ``crashed`` is how
    many of its attempts crashed before this one. Crashes and the attempts that raised share
    the step's ``max_retries``: the attempts that raised in a worker that later crashed are
    recorded in storage under ``key`` (``WorkflowStore.save_raised_attempts``), so the worker
    that replaces it counts them too.
    """

    key: str
    crashed: int


#: The current step run's execution; None under an executor that does not retry crashes.
EXECUTION: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "durably_execution", default=None
)


_functions: dict[str, Any] = {}
_functions_lock = threading.Lock()


def load_function(store: WorkflowStore, func_key: str) -> Any:
    """The step function (or event listener class) stored under ``func_key``, unpickled once per process."""
    func = _functions.get(func_key)
    if func is None:
        func = store.load_function(func_key)
        with _functions_lock:
            _functions[func_key] = func
    return func


def resolve_inputs(store: WorkflowStore, inputs: tuple[Any, ...]) -> list[Any] | None:
    """The input values (stored ones loaded), or None if an input is ``UNRESOLVED``."""
    values = []
    for value in inputs:
        if value is UNRESOLVED:
            return None
        if isinstance(value, StoredOutput):
            value = store.load_step_output(value.step_id)
        values.append(value)
    return values


class RetriesExhaustedError(Exception):
    """A step's worker crashed at the last attempt its ``max_retries`` allowed."""


def _call_with_retries(
    task: StepTask, store: WorkflowStore, func: Any, args: Any, kwargs: Any, started: float
) -> tuple[Any, BaseException | None, int]:
    """Call the step (first at ``started``), retrying retryable failures with backoff.

    Returns (result, caught error, attempts); the error is set only for ``catch_exceptions`` steps.
    """
    spec, options = task.spec, task.spec.options
    allowed = options.attempts_allowed()
    execution = EXECUTION.get()
    raised = store.raised_attempts(spec.step_id, execution.key) if execution and execution.crashed else 0
    attempt = raised + (execution.crashed if execution else 0)
    if allowed is not None and attempt >= allowed:
        error: Exception = RetriesExhaustedError(
            f"step {spec.name!r}: its worker crashed at attempt {attempt}, the last that max_retries="
            f"{options.max_retries} allows ({raised} attempts raised, {attempt - raised} workers crashed; "
            "both count against max_retries)"
        )
        return _give_up(task, error, attempt, started)
    while True:
        attempt += 1
        hook().durably_step_started(
            workflow_id=task.workflow_id,
            step_id=spec.step_id,
            name=spec.name,
            attempt=attempt,
            context=task.context,
        )
        try:
            token = INSIDE_STEP.set(True)
            try:
                return func(*args, **kwargs), None, attempt
            finally:
                INSIDE_STEP.reset(token)
        except Exception as error:
            if options.is_retryable(error) and (allowed is None or attempt < allowed):
                if execution is not None:  # should this worker crash later, its successor counts this
                    raised += 1
                    store.save_raised_attempts(spec.step_id, execution.key, raised)
                delay = options.retry_wait(attempt)
                hook().durably_step_retried(
                    workflow_id=task.workflow_id,
                    step_id=spec.step_id,
                    name=spec.name,
                    attempt=attempt,
                    error=error,
                    delay=delay,
                    context=task.context,
                )
                time.sleep(delay)
                continue
            return _give_up(task, error, attempt, started)


def _give_up(task: StepTask, error: Exception, attempts: int, started: float) -> tuple[None, Exception, int]:
    """The step failed for good: (None, error, attempts) for a ``catch_exceptions`` step, else raise."""
    spec = task.spec
    if spec.options.catch_exceptions:
        return None, error, attempts
    remember_failure(error, attempts, started, time.time())
    hook().durably_step_failed(
        workflow_id=task.workflow_id,
        step_id=spec.step_id,
        name=spec.name,
        error=error,
        context=task.context,
    )
    raise StepFailure(task.workflow_id, spec.step_id, error) from error


def remember_failure(error: BaseException, attempts: int, started: float, ended: float) -> None:
    """Note the traceback text, attempt count and times on a step's final error, for its workflow's status.

    They travel with the exception (its ``__dict__`` is pickled) to the driver, which may be in
    another process: the traceback object itself does not survive that trip.
    """
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    with contextlib.suppress(Exception):  # an exception class may refuse new attributes
        setattr(error, DURABLY_TRACEBACK, text)
        setattr(error, DURABLY_ATTEMPTS, attempts)
        setattr(error, DURABLY_STEP_TIMES, (started, ended))


def _argument_resolver(store: WorkflowStore, spec: StepSpec, values: list[Any]) -> Any:
    def resolve(persistent_id: Any) -> Any:
        kind, index = persistent_id
        if kind == "dep":
            return values[index]
        if kind == "objref-arg":
            return store.restore_argument_object(spec, index)
        raise ValueError(f"unknown argument placeholder {kind!r} in step {spec.step_id!r}")

    return resolve


def recorded_outcome(store: WorkflowStore, spec: StepSpec) -> tuple[Any, StepOutcome] | None:
    """What an earlier run of this step recorded (output or continuation), or None if it recorded nothing."""
    if store.has_step_output(spec.step_id):
        return store.load_step_output(spec.step_id), DONE
    if store.has_continuation(spec.step_id):
        return UNRESOLVED, Continuation(store.load_continuation(spec.step_id))
    return None


def execute_step(task: StepTask, *inputs: Any, retried: bool = False) -> tuple[Any, StepOutcome]:
    """Run one step; returns (value for consumers, outcome for the engine).

    The checkpoint is written here, before this returns, so no consumer can start before the
    output it consumes is durable. It is written once: when another run of the same step
    recorded first, that record is the step's value and outcome. ``retried`` (the executor
    re-runs a task whose worker died) and ``task.look_first`` (a run that took the workflow
    over from an earlier driver) look for such a record before calling the step. A step that
    runs in its driver's process writes nothing once that driver lost its lease (``LeaseLost``).
    """
    spec = task.spec
    store = open_workflow_store(task.storage_url, task.workflow_id)
    if retried or task.look_first:
        recorded = recorded_outcome(store, spec)
        if recorded is not None:
            return recorded
    values = resolve_inputs(store, inputs)
    if values is None:
        return UNRESOLVED, UNRESOLVED_INPUT
    func = load_function(store, spec.func_key)
    args, kwargs = _codec.loads_with(spec.encoded_args, _argument_resolver(store, spec, values))
    started = time.time()
    result, caught, attempts = _call_with_retries(task, store, func, args, kwargs, started)
    meta = step_metadata(spec, started, time.time(), attempts)
    if isinstance(result, Workflow) and caught is None:
        graph = flatten(result, parent_step_id=spec.step_id)
        check_held(store.storage, store.lease_key)
        if not store.save_continuation(spec.step_id, graph, meta):
            graph = store.load_continuation(spec.step_id)  # another run of this step recorded first
        if spec.named and task.dynamic:
            # get_output(task_id=name) follows the continuation from the step it names.
            store.save_step_name(spec.name, spec.step_id)
        hook().durably_step_continued(
            workflow_id=task.workflow_id,
            step_id=spec.step_id,
            name=spec.name,
            duration=meta["end_time"] - meta["start_time"],
            context=task.context,
        )
        return UNRESOLVED, Continuation(graph)
    if spec.options.catch_exceptions:
        if caught is not None:
            caught = loadable_error(task.workflow_id, spec.step_id, caught)
        result = (None, caught) if caught is not None else (result, None)
    result = record_finished_step(store, task, result, meta, store_output=spec.options.checkpoint)
    return result, DONE


def step_metadata(spec: StepSpec, started: float, ended: float, attempts: int) -> dict[str, Any]:
    """What a checkpoint records about the step besides its output."""
    return {
        "name": spec.name,
        "start_time": started,
        "end_time": ended,
        "attempts": attempts,
        "user_metadata": spec.options.metadata,
    }


def record_finished_step(
    store: WorkflowStore, task: StepTask, result: Any, meta: dict[str, Any], store_output: bool
) -> Any:
    """Checkpoint a finished step's output (and its name, if dynamic), then tell the plugins.

    Returns the step's value: ``result``, or the output another run of the step recorded first.
    """
    spec = task.spec
    if store_output:
        # A lazy Dataset would run once for the checkpoint and again in each consumer.
        result = materialize(result)
        check_held(store.storage, store.lease_key)
    if store_output and not store.save_step_output(spec.step_id, result, meta):
        result = store.load_step_output(spec.step_id)
    if spec.named and task.dynamic:
        store.save_step_name(spec.name, spec.step_id)
    hook().durably_step_finished(
        workflow_id=task.workflow_id,
        step_id=spec.step_id,
        name=spec.name,
        duration=meta["end_time"] - meta["start_time"],
        context=task.context,
    )
    return result
