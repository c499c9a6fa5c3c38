"""Running one workflow from start (or resume) to a final status, under its lease."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from durably._engine import Cancelled, UncaughtStepFailure, WorkflowEngine
from durably._errors import (
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotResumableError,
    WorkflowRunningError,
)
from durably._graph import Graph
from durably._inspect import stored_result
from durably._lease import Lease, LeaseLost
from durably._plugins import hook
from durably._snapshots import CodeSnapshot, InheritedEnv
from durably._status import WorkflowStatus
from durably._store import WorkflowStore, open_workflow_store
from durably.executors import Executor
from durably.storage import StorageError


def check_resumable(store: WorkflowStore, new: bool) -> None:
    """Refuse to drive a workflow that was cancelled; ``new``: this run created it, so it was
    cancelled before its first run began (``WorkflowCancellationError``, not "not resumable")."""
    if _recorded_cancel(store):
        if new:
            raise WorkflowCancellationError(store.workflow_id)
        raise WorkflowNotResumableError(
            store.workflow_id, "it was cancelled; delete it with workflow.delete() to run it again"
        )


def _recorded_cancel(store: WorkflowStore) -> bool:
    status = store.load_status_meta()
    return status is not None and status.get("status") == WorkflowStatus.CANCELED


def _cancelled_before_running(store: WorkflowStore, cancel_event: threading.Event | None) -> bool:
    """Whether a cancel came while this driver took the lease, before it wrote RUNNING.

    ``workflow.cancel`` of a workflow no driver holds records CANCELED itself and leaves its
    request: a driver that took the lease meanwhile (a run just started, or started by a host
    the canceller does not know) must stop here, or its RUNNING would hide the cancel.
    """
    return (
        (cancel_event is not None and cancel_event.is_set())
        or store.cancel_requested()
        or _recorded_cancel(store)
    )


def snapshot_of(store: WorkflowStore, executor: Executor) -> CodeSnapshot | None:
    """The workflow's recorded code snapshot, refused by an executor that cannot run steps under it."""
    record = store.load_runtime_env()
    if record is None:
        return None
    if not getattr(executor, "supports_runtime_env", False):
        raise WorkflowError(
            f"workflow {store.workflow_id!r} has a code snapshot (runtime_env), which the "
            f"{executor.name!r} executor cannot run steps under; use workflow.init(executor='ray')"
        )
    snapshot = CodeSnapshot(store.storage, record)
    snapshot.ray_env()  # the cluster gets the packages now: a missing one fails before the run starts
    return snapshot


def drive(
    storage_url: str,
    workflow_id: str,
    executor: Executor,
    graph: Graph | None = None,
    cancel_event: threading.Event | None = None,
    context: Mapping[str, str] | None = None,
    inherited_env: Mapping[str, Any] | None = None,
) -> Any:
    """Run (or resume) the workflow to its end and return its output; stores every status change.

    ``context`` is what plugins asked to carry from where the run was asked for (see
    ``durably_propagation_context``), given to ``durably_workflow_started``. ``inherited_env``:
    the runtime_env of the Ray job that asked for the run, which its steps inherit when the
    workflow has no code snapshot (``StepTask.inherited_env``).
    """
    store = open_workflow_store(storage_url, workflow_id)
    finished, value = stored_result(store)
    if finished:
        return value
    check_resumable(store, new=graph is not None)
    snapshot = snapshot_of(store, executor)
    lease = Lease(store.storage, store.lease_key, workflow_id)
    lease.acquire()
    try:
        finished, value = stored_result(store)  # it may have finished while we took the lease
        if finished:
            return value
        assert lease.number is not None
        epoch = lease.number
        if _cancelled_before_running(store, cancel_event):
            store.save_status(WorkflowStatus.CANCELED, epoch=epoch, ended_at=time.time())
            store.clear_cancel()
            raise WorkflowCancellationError(workflow_id)
        if graph is None:
            graph = store.load_graph()
        started = time.time()
        store.save_status(WorkflowStatus.RUNNING, epoch=epoch, started_at=started)
        metadata = store.load_meta().get("user_metadata", {})
        hook().durably_workflow_started(workflow_id=workflow_id, metadata=metadata, context=context or {})
        engine = WorkflowEngine(
            store,
            storage_url,
            executor,
            graph,
            cancel_event,
            lease,
            snapshot,
            # The snapshot, when there is one, is every step's whole runtime_env.
            InheritedEnv(inherited_env) if inherited_env and snapshot is None else None,
        )
        try:
            output_step, value = engine.run()
        except UncaughtStepFailure as failure:
            error = WorkflowExecutionError(workflow_id, failure.step_id, failure.error)
            error.__cause__ = failure.error
            _finish(store, epoch, WorkflowStatus.FAILED, started, error, failure.step_id)
            raise error from failure.error
        except Cancelled:
            store.clear_cancel()
            cancelled = WorkflowCancellationError(workflow_id)
            _finish(store, epoch, WorkflowStatus.CANCELED, started, cancelled)
            raise cancelled from None
        except LeaseLost:
            reason = (
                "another driver took it over"
                if lease.renew_error is None
                else f"it stopped: its lease could not be renewed in time ({lease.renew_error})"
            )
            raise WorkflowRunningError(workflow_id, reason) from lease.renew_error
        except StorageError as lasting:
            # Storage kept failing past the retries: nothing is wrong with the workflow, so it is
            # not marked FAILED (and no step is blamed); once the lease is gone it is RESUMABLE.
            raise WorkflowError(
                f"workflow {workflow_id!r} stopped because its storage kept failing ({lasting}); "
                f"it is resumable: call workflow.resume({workflow_id!r}) once the storage works"
            ) from lasting
        except (KeyboardInterrupt, SystemExit):
            raise  # the driver was stopped, not the workflow: it stays RESUMABLE
        except BaseException as unexpected:
            error = WorkflowExecutionError(workflow_id, None, unexpected)
            _finish(store, epoch, WorkflowStatus.FAILED, started, error)
            raise error from unexpected
        if not store.save_result_pointer(output_step):
            # Another driver recorded the result first: every caller gets that one.
            _, value = stored_result(store)
        _finish(store, epoch, WorkflowStatus.SUCCESSFUL, started, None)
        return value
    finally:
        # If storage fails here too, the lease runs out by itself and the workflow becomes RESUMABLE.
        with contextlib.suppress(StorageError):
            lease.release()


def _finish(
    store: WorkflowStore,
    epoch: int,
    status: WorkflowStatus,
    started: float,
    error: BaseException | None,
    step_id: str | None = None,
) -> None:
    details: dict[str, Any] = {"started_at": started, "ended_at": time.time()}
    if step_id is not None:
        details["failed_step"] = step_id
    store.save_status(status, epoch=epoch, error=error, **details)
    hook().durably_workflow_finished(workflow_id=store.workflow_id, status=status.value, error=error)
