"""The code that runs inside a worker: load inputs, call the step, checkpoint the result."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durably import _codec
from durably._graph import StepSpec, flatten
from durably._plugins import hook
from durably._resolve import open_storage
from durably._step import Workflow
from durably._store import StoredOutput, WorkflowStore

#: What a step's value slot holds when the step produced no value (yet): a continuation, or an
#: input that was itself unresolved. Consumers that receive it return it again, unrun.
UNRESOLVED = "__durably_unresolved__"

#: True while a step's function runs (``workflow.continuation`` then returns a continuation).
INSIDE_STEP: contextvars.ContextVar[bool] = contextvars.ContextVar("durably_inside_step", default=False)

INFO_DONE = "done"
INFO_CONTINUATION = "continuation"
INFO_UNRESOLVED_INPUT = "unresolved-input"


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one step."""

    storage_url: str
    workflow_id: str
    spec: StepSpec
    dynamic: bool = False
    #: What plugins asked the driver to carry to the worker's step hooks (``durably_propagation_context``).
    context: Mapping[str, str] = field(default_factory=dict)


class StepFailure(Exception):
    """A step failed for good; carries the workflow, the step and the step's own exception."""

    def __init__(self, workflow_id: str, step_id: str, error: BaseException) -> None:
        super().__init__(workflow_id, step_id, error)
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.error = error

    def __str__(self) -> str:
        reason = f"{type(self.error).__name__}: {self.error}"
        return f"step {self.step_id!r} of workflow {self.workflow_id!r} failed: {reason}"


_functions: dict[str, Any] = {}
_functions_lock = threading.Lock()


def _load_function(store: WorkflowStore, func_key: str) -> Any:
    func = _functions.get(func_key)
    if func is None:
        func = store.load_function(func_key)
        with _functions_lock:
            _functions[func_key] = func
    return func


def _resolve_inputs(store: WorkflowStore, inputs: tuple[Any, ...]) -> list[Any] | None:
    values = []
    for value in inputs:
        if isinstance(value, str) and value == UNRESOLVED:
            return None
        if isinstance(value, StoredOutput):
            value = store.load_step_output(value.step_id)
        values.append(value)
    return values


def _call_with_retries(
    task: StepTask, func: Any, args: Any, kwargs: Any
) -> tuple[Any, BaseException | None, int]:
    """Call the step, retrying retryable failures with backoff.

    Returns (result, caught error, attempts); the error is set only for ``catch_exceptions`` steps.
    """
    spec, options = task.spec, task.spec.options
    allowed = options.attempts_allowed()
    attempt = 0
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
            if options.catch_exceptions:
                return None, error, attempt
            hook().durably_step_failed(
                workflow_id=task.workflow_id,
                step_id=spec.step_id,
                name=spec.name,
                error=error,
                context=task.context,
            )
            raise StepFailure(task.workflow_id, spec.step_id, error) from error


def _argument_resolver(store: WorkflowStore, spec: StepSpec, values: list[Any]) -> Any:
    def resolve(persistent_id: Any) -> Any:
        kind, index = persistent_id
        if kind == "dep":
            return values[index]
        if kind == "objref-arg":
            return store.restore_argument_object(spec, index)
        raise ValueError(f"unknown argument placeholder {kind!r} in step {spec.step_id!r}")

    return resolve


def execute_step(task: StepTask, *inputs: Any) -> tuple[Any, tuple[Any, ...]]:
    """Run one step; returns (value for consumers, info for the engine).

    The checkpoint is written here, before this returns, so no consumer can start before the
    output it consumes is durable.
    """
    spec = task.spec
    store = WorkflowStore(open_storage(task.storage_url), task.workflow_id)
    values = _resolve_inputs(store, inputs)
    if values is None:
        return UNRESOLVED, (INFO_UNRESOLVED_INPUT,)
    func = _load_function(store, spec.func_key)
    args, kwargs = _codec.loads_with(spec.encoded_args, _argument_resolver(store, spec, values))
    started = time.time()
    result, caught, attempts = _call_with_retries(task, func, args, kwargs)
    meta = step_metadata(spec, started, time.time(), attempts)
    if isinstance(result, Workflow) and caught is None:
        graph = flatten(result, parent_step_id=spec.step_id)
        store.save_continuation(spec.step_id, graph, meta)
        hook().durably_step_continued(
            workflow_id=task.workflow_id,
            step_id=spec.step_id,
            name=spec.name,
            duration=meta["end_time"] - meta["start_time"],
            context=task.context,
        )
        return UNRESOLVED, (INFO_CONTINUATION, graph)
    if spec.options.catch_exceptions:
        result = (None, caught) if caught is not None else (result, None)
    record_finished_step(store, task, result, meta, store_output=spec.options.checkpoint)
    return result, (INFO_DONE,)


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
) -> None:
    """Checkpoint a finished step's output (and its name, if dynamic), then tell the plugins."""
    spec = task.spec
    if store_output:
        store.save_step_output(spec.step_id, result, meta)
    if spec.named and task.dynamic:
        store.save_step_name(spec.name, spec.step_id)
    hook().durably_step_finished(
        workflow_id=task.workflow_id,
        step_id=spec.step_id,
        name=spec.name,
        duration=meta["end_time"] - meta["start_time"],
        context=task.context,
    )
