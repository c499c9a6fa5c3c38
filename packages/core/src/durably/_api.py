"""The public operations behind ``durably.workflow``: init, run, and managing stored workflows."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from durably._driver import stored_result
from durably._errors import (
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowRunningError,
)
from durably._graph import flatten
from durably._hosts import EngineHost, RayEngineHost
from durably._ids import generate_workflow_id, validate_workflow_id
from durably._lease import lease_is_live
from durably._resolve import normalize_storage_url, open_storage
from durably._retention import Duration, optional_duration
from durably._status import WorkflowStatus
from durably._step import Workflow
from durably._store import WorkflowStore, list_workflow_ids
from durably.storage import KeyNotFound, Storage

DEFAULT_STORAGE_ENV = "DURABLY_STORAGE"
DEFAULT_STORAGE = os.path.join("~", ".durably", "storage")
EXECUTORS_WITH_RAY = {"ray"}
#: The address a Ray node started by durably listens on (e.g. a loopback address such as 127.0.0.2).
RAY_NODE_IP_ENV = "DURABLY_RAY_NODE_IP"


@dataclass
class _Config:
    storage_url: str
    executor: str
    host: Any
    #: Seconds a finished workflow is kept unless its run says otherwise (None: forever).
    retention: float | None = None


_config: _Config | None = None
_config_lock = threading.Lock()


def init(
    storage: str | os.PathLike[str] | None = None,
    *,
    executor: str = "ray",
    ray_address: str | None = None,
    max_running_workflows: int | None = None,
    max_pending_workflows: int | None = None,
    retention: Duration | None = None,
    gc_interval: Duration | None = None,
) -> None:
    """Choose where workflows are stored and where their steps run.

    ``storage`` is a path, or a URL: ``file://``, ``memory://``, and the schemes of installed
    plugins (``s3://`` from durably-s3, ``gs://`` from durably-gcs). Without it, the
    ``DURABLY_STORAGE`` environment variable, else ``~/.durably/storage``. ``executor`` is
    ``"ray"`` (joins the running Ray cluster, or starts a local one) or ``"local"`` (threads in
    this process, no Ray). ``max_running_workflows`` caps how many workflows run at once
    (others wait as PENDING, in submission order); beyond ``max_pending_workflows`` waiting,
    submitting raises. ``retention`` is how long a finished (SUCCESSFUL, FAILED, CANCELED)
    workflow is kept before ``durably gc`` may delete it: a timedelta, seconds, or text such as
    ``"30d"`` (default: forever; ``run(..., retention=...)`` overrides it per workflow). With
    ``gc_interval``, the engine host deletes expired workflows that often. Calling it again
    switches to the new settings.
    """
    default_retention = optional_duration(retention, "retention")
    interval = optional_duration(gc_interval, "gc_interval")
    if interval is not None and interval <= 0:
        raise ValueError(f"gc_interval must be longer than 0 seconds, got {gc_interval!r}")
    for name, value in (
        ("max_running_workflows", max_running_workflows),
        ("max_pending_workflows", max_pending_workflows),
    ):
        if value is not None and (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (1 if name == "max_running_workflows" else 0)
        ):
            raise ValueError(f"{name} must be a positive int (or None for no limit), got {value!r}")
    global _config
    url = normalize_storage_url(
        storage or os.environ.get(DEFAULT_STORAGE_ENV) or os.path.expanduser(DEFAULT_STORAGE)
    )
    if executor in EXECUTORS_WITH_RAY:
        _ensure_ray(ray_address)
    open_storage(url)  # fail now, with the package to install, not at the first step
    host: Any = RayEngineHost() if executor in EXECUTORS_WITH_RAY else EngineHost(executor)
    host.configure(max_running_workflows, max_pending_workflows)
    host.configure_gc(url, interval)
    if _config is not None:
        _config.host.configure_gc(_config.storage_url, None)  # the replaced host stops collecting
    with _config_lock:
        _config = _Config(storage_url=url, executor=executor, host=host, retention=default_retention)


def _ensure_ray(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        # With no address, Ray joins a cluster started by `ray start` on this machine
        # (or RAY_ADDRESS), and otherwise starts a local one.
        options: dict[str, Any] = {}
        node_ip = os.environ.get(RAY_NODE_IP_ENV)
        if node_ip:
            options["_node_ip_address"] = node_ip
        if address is None and not os.environ.get("RAY_ADDRESS") and not _recorded_cluster_answers():
            address = "local"  # the cluster `ray start` last recorded is gone: do not wait for it
        ray.init(address=address, ignore_reinit_error=True, **options)


def _recorded_cluster_answers() -> bool:
    """Whether the cluster that `ray start` recorded on this machine (if any) accepts connections."""
    import socket

    from ray._private.utils import read_ray_address

    recorded = read_ray_address()
    if not recorded:
        return False
    host, _, port = recorded.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def config() -> _Config:
    """The current configuration, initialising with the defaults on first use."""
    if _config is None:
        init()
    assert _config is not None
    return _config


def storage() -> Storage:
    return open_storage(config().storage_url)


def _store(workflow_id: str) -> WorkflowStore:
    return WorkflowStore(storage(), validate_workflow_id(workflow_id))


def _existing_store(workflow_id: str) -> WorkflowStore:
    store = _store(workflow_id)
    if not store.exists():
        raise WorkflowNotFoundError(workflow_id)
    return store


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"workflow metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"workflow metadata must be JSON-serialisable: {exc}") from None
    return metadata


# -- running ----------------------------------------------------------------------------------
def _prepare(
    node: Workflow[Any],
    workflow_id: str | None,
    metadata: dict[str, Any] | None,
    retention: Duration | None = None,
) -> tuple[str, Any]:
    if not isinstance(node, Workflow):
        raise TypeError(f"run() takes a step future (the result of f.step(...)), got {type(node).__name__}")
    workflow_id = generate_workflow_id() if workflow_id is None else validate_workflow_id(workflow_id)
    keep = optional_duration(retention, "retention")
    graph = flatten(node)
    store = _store(workflow_id)
    created = store.create(graph, _check_metadata(metadata), config().retention if keep is None else keep)
    return workflow_id, graph if created else None


def run(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
) -> Any:
    """Run the workflow ending at ``node`` and return its output (the stored one if it finished before).

    ``retention`` (see ``init``) is how long this workflow is kept once it finished.
    """
    cfg = config()
    workflow_id, graph = _prepare(node, workflow_id, metadata, retention)
    return cfg.host.run(cfg.storage_url, workflow_id, graph)


def run_async(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
) -> Any:
    """Start the workflow and return a ray.ObjectRef of its output (a Future with the local executor)."""
    cfg = config()
    workflow_id, graph = _prepare(node, workflow_id, metadata, retention)
    return cfg.host.run_async(cfg.storage_url, workflow_id, graph)


def resume(workflow_id: str) -> Any:
    """Continue a workflow from its checkpoints and return its output; finished steps do not run again."""
    cfg = config()
    _existing_store(workflow_id)
    return cfg.host.run(cfg.storage_url, workflow_id, None)


def resume_async(workflow_id: str) -> Any:
    """Like ``resume``, but returns a ray.ObjectRef (a Future with the local executor)."""
    cfg = config()
    _existing_store(workflow_id)
    return cfg.host.run_async(cfg.storage_url, workflow_id, None)


def resume_all(include_failed: bool = False) -> list[tuple[str, Any]]:
    """Resume every RESUMABLE workflow, then every PENDING one (and FAILED ones if asked).

    Returns (id, ObjectRef) pairs (Futures with the local executor), in the order submitted:
    the ones that were running first, so they get the running slots.
    """
    order = [WorkflowStatus.RESUMABLE, WorkflowStatus.PENDING] + (
        [WorkflowStatus.FAILED] if include_failed else []
    )
    found = list_all(set(order))
    found.sort(key=lambda item: order.index(item[1]))
    return [(workflow_id, resume_async(workflow_id)) for workflow_id, _ in found]


# -- inspecting -------------------------------------------------------------------------------
def _status_of(store: WorkflowStore) -> WorkflowStatus:
    try:
        record, _ = store.load_status()
    except KeyNotFound:
        if not store.exists():
            raise WorkflowNotFoundError(store.workflow_id) from None
        return (
            WorkflowStatus.RESUMABLE
            if not lease_is_live(store.storage, store.key("lease"))
            else WorkflowStatus.RUNNING
        )
    status = WorkflowStatus(record["status"])
    if status == WorkflowStatus.RUNNING and not lease_is_live(store.storage, store.key("lease")):
        return WorkflowStatus.RESUMABLE
    return status


def get_status(workflow_id: str) -> WorkflowStatus:
    """The workflow's status; RESUMABLE when it was running but nobody drives it any more."""
    return _status_of(_existing_store(workflow_id))


def _failure_of(store: WorkflowStore) -> BaseException:
    record, error = store.load_status()
    if isinstance(error, BaseException):
        return error
    return WorkflowExecutionError(
        store.workflow_id, record.get("failed_step"), record.get("error", "unknown error")
    )


def _step_name(name: str | None, task_id: str | None) -> str | None:
    """``task_id`` is Ray 2.x's word for a step's name."""
    if task_id is not None and name is not None and task_id != name:
        raise ValueError(f"name={name!r} and task_id={task_id!r} disagree; give one of them")
    return name if task_id is None else task_id


def get_output(
    workflow_id: str, name: str | None = None, timeout: float | None = None, *, task_id: str | None = None
) -> Any:
    """The workflow's output, or a named step's; waits while the workflow is still running.

    ``task_id`` is an alias of ``name``, as Ray 2.x called it.
    """
    return _output_of(_existing_store(workflow_id), _step_name(name, task_id), timeout)


def _output_of(store: WorkflowStore, name: str | None, timeout: float | None) -> Any:
    workflow_id = store.workflow_id
    if name is not None:
        return _step_output(store, name)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    while True:
        finished, value = stored_result(store)
        if finished:
            return value
        status = _status_of(store)
        if status == WorkflowStatus.FAILED:
            raise _failure_of(store)
        if status == WorkflowStatus.CANCELED:
            raise WorkflowCancellationError(workflow_id)
        if status == WorkflowStatus.RESUMABLE:
            raise WorkflowError(
                f"workflow {workflow_id!r} is not finished and nothing is running it; "
                f"call workflow.resume({workflow_id!r}) to continue it"
            )
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout} s")
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)


def _find_step(store: WorkflowStore, name: str) -> str:
    finished_values, finished_continuations = store.finished_steps()
    if name in finished_values or name in finished_continuations:
        return name
    step_id = store.step_id_for_name(name)
    if step_id is not None:
        return step_id
    graph = store.load_graph()
    if any(spec.step_id == name for spec in graph.steps):
        raise WorkflowError(f"step {name!r} of workflow {store.workflow_id!r} has not finished yet")
    raise WorkflowNotFoundError(store.workflow_id, f"it has no step named {name!r}")


def _step_output(store: WorkflowStore, name: str) -> Any:
    step_id = _find_step(store, name)
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


def get_metadata(workflow_id: str, name: str | None = None, *, task_id: str | None = None) -> dict[str, Any]:
    """User metadata and timing: of the workflow, or of one of its steps (``name``, or Ray's ``task_id``)."""
    store = _existing_store(workflow_id)
    name = _step_name(name, task_id)
    if name is not None:
        step_id = _find_step(store, name)
        meta = store.load_step_meta(step_id)
        return {
            "workflow_id": workflow_id,
            "step_id": step_id,
            "name": meta.get("name"),
            "user_metadata": meta.get("user_metadata", {}),
            "stats": {"start_time": meta.get("start_time"), "end_time": meta.get("end_time")},
            "attempts": meta.get("attempts"),
        }
    meta = store.load_meta()
    try:
        status_record, _ = store.load_status()
    except KeyNotFound:
        status_record = {}
    stats = {"created_at": meta.get("created_at"), "start_time": status_record.get("started_at")}
    if "ended_at" in status_record:
        stats["end_time"] = status_record["ended_at"]
    return {
        "workflow_id": workflow_id,
        "status": _status_of(store).value,
        "user_metadata": meta.get("user_metadata", {}),
        "stats": stats,
    }


def list_all(
    status_filter: WorkflowStatus | str | set[WorkflowStatus | str] | None = None,
) -> list[tuple[str, WorkflowStatus]]:
    """(id, status) of every stored workflow, optionally only those with the given status(es)."""
    if status_filter is None:
        wanted = None
    else:
        items = [status_filter] if isinstance(status_filter, (str, WorkflowStatus)) else list(status_filter)
        try:
            wanted = {WorkflowStatus(str(item).upper()) for item in items}
        except ValueError:
            names = ", ".join(status.value for status in WorkflowStatus)
            raise ValueError(f"unknown status in {status_filter!r}; statuses are {names}") from None
    found = []
    for workflow_id in list_workflow_ids(storage()):
        try:
            status = _status_of(WorkflowStore(storage(), workflow_id))
        except WorkflowNotFoundError:
            continue  # deleted while we listed
        if wanted is None or status in wanted:
            found.append((workflow_id, status))
    return found


# -- changing ---------------------------------------------------------------------------------
def cancel(workflow_id: str, timeout: float = 30.0) -> None:
    """Cancel the workflow: running steps are stopped, its status becomes CANCELED."""
    cfg = config()
    store = _existing_store(workflow_id)
    status = _status_of(store)
    if status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED):
        return
    store.request_cancel()
    if status != WorkflowStatus.RUNNING:
        store.save_status(WorkflowStatus.CANCELED, ended_at=time.time())
        store.clear_cancel()
        return
    cfg.host.cancel(cfg.storage_url, workflow_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status_of(store) != WorkflowStatus.RUNNING:
            return
        time.sleep(0.05)
    raise WorkflowError(f"workflow {workflow_id!r} did not stop within {timeout} s of being cancelled")


def delete(workflow_id: str) -> None:
    """Remove a stopped workflow and its keys; if no workflow has the id, the virtual actor that has it."""
    store = _store(workflow_id)
    if not store.exists():
        from durably._actors import delete_actor_if_exists

        if delete_actor_if_exists(workflow_id):
            return
        raise WorkflowNotFoundError(workflow_id)
    if lease_is_live(store.storage, store.key("lease")):
        raise WorkflowRunningError(workflow_id, "cancel it before deleting it")
    store.delete()
