"""Reading a stored workflow from outside its run: its status, failure and outputs.

Used by the API (``get_status``, ``get_output``...) and by the layers that act on a workflow
from outside its engine (``send_event``, virtual actors, ``get_output_async``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from durably import _config
from durably._errors import (
    StepNotFoundError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    also_instance_of,
)
from durably._ids import validate_workflow_id
from durably._lease import lease_is_live, process_is_gone
from durably._status import WorkflowStatus
from durably._store import WorkflowStore, open_workflow_store
from durably.storage import KeyNotFound


def workflow_store(workflow_id: str) -> WorkflowStore:
    """The store of ``workflow_id`` in the configured storage (it may not exist yet)."""
    return open_workflow_store(_config.current().storage_url, validate_workflow_id(workflow_id))


def existing_store(workflow_id: str) -> WorkflowStore:
    """The store of ``workflow_id``; raises ``WorkflowNotFoundError`` if nothing is stored under it."""
    store = workflow_store(workflow_id)
    if not store.exists():
        raise WorkflowNotFoundError(workflow_id)
    return store


def stored_result(store: WorkflowStore) -> tuple[bool, Any]:
    """(True, output) when the workflow already finished successfully, else (False, None)."""
    step_id = store.result_step_id()
    if step_id is None:
        return False, None
    return True, store.load_recorded_output(step_id, recorded_by="result")


def status_of(store: WorkflowStore) -> WorkflowStatus:
    record = store.load_status_meta()
    if record is None and not store.exists():
        raise WorkflowNotFoundError(store.workflow_id)
    return believed_status(store, record)


def believed_status(store: WorkflowStore, record: dict[str, Any] | None) -> WorkflowStatus:
    """The status a reader should believe from a status record (None: none written yet).

    A workflow RUNNING (or not started) whose driver holds no live lease is RESUMABLE: its driver
    died. ``durably.inspect`` reads statuses through this too, so the API and the CLI agree.
    """
    status = (
        WorkflowStatus(record.get("status", WorkflowStatus.RUNNING)) if record else WorkflowStatus.RUNNING
    )
    if status == WorkflowStatus.RUNNING and not lease_is_live(store.storage, store.lease_key):
        return WorkflowStatus.RESUMABLE
    return status


def orphaned_pending(store: WorkflowStore) -> bool:
    """Whether the workflow is PENDING in the queue of a process that has exited (nobody will start it)."""
    record = store.load_status_meta() or {}
    return record.get("status") == WorkflowStatus.PENDING and process_is_gone(record.get("queued_by") or {})


def failure_of(store: WorkflowStore) -> BaseException:
    """The exception of a failed run; a ``WorkflowExecutionError`` with its text when it cannot be loaded."""
    try:
        error = store.load_failure()
    except Exception:  # its class is missing or broken in this process: the text still tells
        error = None
    if error is not None:
        return error
    record = store.load_status_meta() or {}
    return WorkflowExecutionError(
        store.workflow_id, record.get("failed_step"), record.get("error", "unknown error")
    )


def _as_step_error(error: BaseException) -> BaseException:
    """A failed workflow's error, also of its step's error type: Ray's ``get_output`` raised that."""
    if isinstance(error, WorkflowExecutionError) and isinstance(error.__cause__, Exception):
        return also_instance_of(error, type(error.__cause__))
    return error


def step_name(name: str | None, task_id: str | None) -> str | None:
    """``task_id`` is Ray 2.x's word for a step's name."""
    if task_id is not None and name is not None and task_id != name:
        raise ValueError(f"name={name!r} and task_id={task_id!r} disagree; give one of them")
    return name if task_id is None else task_id


#: The ids of a storage that an engine host was asked to run and has not finished (its
#: ``driving``): they are RUNNING from the start call, before their engine takes the lease.
Driving = Callable[[], frozenset[str]]


def _status_while_starting(store: WorkflowStore, driving: Driving | None) -> WorkflowStatus:
    # Who drives it is asked first: a run that ends between the two reads is then read as
    # ended, where the other order would take it for one that nobody runs.
    started_here = driving is not None and store.workflow_id in driving()
    status = status_of(store)
    if status == WorkflowStatus.RESUMABLE and started_here:
        return WorkflowStatus.RUNNING
    return status


def output_of(
    store: WorkflowStore, name: str | None, timeout: float | None, driving: Driving | None = None
) -> Any:
    """The workflow's (or a named step's) output, waiting while it runs; ``driving`` tells a
    workflow whose engine has not started yet from one that nobody runs."""
    workflow_id = store.workflow_id
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    if name is not None:
        return _step_output_when_done(store, name, deadline, driving)
    while True:
        finished, value = stored_result(store)
        if finished:
            return value
        status = _status_while_starting(store, driving)
        if status == WorkflowStatus.FAILED:
            raise _as_step_error(failure_of(store))
        if status == WorkflowStatus.CANCELED:
            raise WorkflowCancellationError(workflow_id)
        if status == WorkflowStatus.RESUMABLE or (
            status == WorkflowStatus.PENDING and orphaned_pending(store)
        ):
            finished, value = stored_result(store)  # it may have ended since the first read
            if finished:
                return value
            raise WorkflowError(
                f"workflow {workflow_id!r} is not finished and nothing is running it; "
                f"call workflow.resume({workflow_id!r}) to continue it"
            )
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)


def _step_output_when_done(
    store: WorkflowStore, name: str, deadline: float | None, driving: Driving | None
) -> Any:
    """A named step's output, waiting while the workflow runs (the step, or the continuation
    that creates it, may not have run yet); once nothing runs it, a missing step is an error."""
    delay = 0.05
    while True:
        try:
            return step_output(store, name)
        except WorkflowError:
            if _status_while_starting(store, driving) not in (WorkflowStatus.RUNNING, WorkflowStatus.PENDING):
                # Nothing runs it now, but the step may have finished after the first read and
                # the run ended since: read once more before saying it has not finished.
                return step_output(store, name)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"step {name!r} of workflow {store.workflow_id!r} did not finish in time")
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)


def find_step(store: WorkflowStore, name: str) -> str:
    finished_values, finished_continuations = store.finished_steps()
    if name in finished_values or name in finished_continuations:
        return name
    step_id = store.step_id_for_name(name)
    if step_id is not None:
        return step_id
    graph = store.load_graph()
    if any(spec.step_id == name for spec in graph.steps):
        raise WorkflowError(f"step {name!r} of workflow {store.workflow_id!r} has not finished yet")
    raise StepNotFoundError(store.workflow_id, name)


def step_output(store: WorkflowStore, name: str) -> Any:
    step_id = find_step(store, name)
    for _ in range(1_000_000):
        try:
            return store.load_step_output(step_id)
        except KeyNotFound:
            pass
        try:
            step_id = store.load_continuation(step_id).output
        except KeyNotFound:
            raise WorkflowError(
                f"step {name!r} of workflow {store.workflow_id!r} has not finished yet"
            ) from None
    raise WorkflowError(
        f"step {name!r} of workflow {store.workflow_id!r} has a continuation chain too long to follow"
    )
