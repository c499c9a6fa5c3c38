"""The public operations behind ``durably.workflow``: init, run, and managing stored workflows."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from durably import _config
from durably._durations import Duration, optional_duration
from durably._errors import (
    NothingToResumeError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowRunningError,
)
from durably._hosts import EngineHost, RayEngineHost, check_engines
from durably._inspect import (
    existing_store,
    find_step,
    output_of,
    status_of,
    step_name,
    workflow_store,
)
from durably._lease import current_epoch, lease_is_live, lease_seconds
from durably._lease import wait_for_holder as wait_for_lease_holder
from durably._plugins import propagation_context
from durably._resolve import CODECS_ENV, build_codecs, normalize_storage_url, open_executor, open_storage
from durably._retention import PeriodicCollector
from durably._snapshots import UPGRADE, capture, check_runtime_env, recapture
from durably._status import WorkflowStatus
from durably._status_index import hinted_candidates
from durably._store import WorkflowStore, list_workflow_ids, status_index_built
from durably.actors import delete_actor_if_exists
from durably.codecs import LEGACY_ENV
from durably.storage import Storage

DEFAULT_STORAGE_ENV = "DURABLY_STORAGE"
DEFAULT_STORAGE = os.path.join("~", ".durably", "storage")
#: The address a Ray node started by durably listens on (e.g. a loopback address such as 127.0.0.2).
RAY_NODE_IP_ENV = "DURABLY_RAY_NODE_IP"


def init(
    storage: str | os.PathLike[str] | None = None,
    *,
    executor: str = "ray",
    ray_address: str | None = None,
    max_running_workflows: int | None = None,
    max_pending_workflows: int | None = None,
    retention: Duration | None = None,
    gc_interval: Duration | None = None,
    codecs: Sequence[str] | None = None,
    allow_unsigned_legacy: bool | None = None,
    runtime_env: dict[str, Any] | None = None,
    engines: int | None = None,
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

    ``codecs`` names the codecs every record passes through (``"sign"``, ``"encrypt"``, a
    plugin's), in the order they apply when writing; without it, ``DURABLY_CODECS``, else
    ``sign`` when ``DURABLY_SIGNING_KEY`` is set and ``encrypt`` when ``DURABLY_ENCRYPTION_KEY``
    is. Keys are read from the environment of each process, never stored (docs/security.md).
    ``allow_unsigned_legacy=True`` reads records written before codecs were configured.

    ``runtime_env`` (Ray's format: ``working_dir``, ``py_modules``, ``excludes``, ``pip``, ``uv``,
    ``conda``, ``env_vars``, ``config``) is the code snapshot of each workflow started from now
    on: captured when the workflow first runs (its folders zipped into storage by content hash,
    the rest recorded), and every step of it runs under that snapshot, on resume too, whatever
    the folders hold by then. ``run(..., runtime_env=...)`` overrides it per workflow and
    ``resume(..., runtime_env="current")`` upgrades one on purpose. Needs the ray executor
    (packages/core/docs/code-snapshots.md).

    ``engines`` is how many detached engine actors drive the cluster's workflows with the ray
    executor, each workflow in the one its id hashes to; without it, ``DURABLY_ENGINES``, else
    one per alive node of the cluster, at most 8 (packages/core/docs/engines.md).
    """
    default_retention = optional_duration(retention, "retention")
    interval = optional_duration(gc_interval, "gc_interval")
    if interval is not None and interval <= 0:
        raise ValueError(f"gc_interval must be longer than 0 seconds, got {gc_interval!r}")
    for name, value in (
        ("max_running_workflows", max_running_workflows),
        ("max_pending_workflows", max_pending_workflows),
    ):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be a positive int (or None for no limit), got {value!r}")
        if value < (1 if name == "max_running_workflows" else 0):
            raise ValueError(f"{name} must be a positive int (or None for no limit), got {value!r}")
    if storage is not None and not str(storage).strip():
        raise ValueError(
            "storage must not be empty; pass a path or URL (file://, memory://, s3://...), "
            "or leave it out for $DURABLY_STORAGE or ~/.durably/storage"
        )
    code = check_runtime_env(runtime_env)
    engine_count = check_engines(engines)
    chosen = open_executor(executor)
    if engines is not None and not chosen.has_cluster_host:
        raise ValueError(
            f"engines is the number of Ray engine actors; the {executor!r} executor drives workflows "
            f"in this process's threads: drop engines, or use executor='ray'"
        )
    if chosen.has_cluster_host:
        _refuse_ray_client(ray_address)
    if code is not None and not getattr(chosen, "supports_runtime_env", False):
        raise ValueError(
            f"runtime_env needs the ray executor (steps run where Ray can give them the snapshot); "
            f"the {executor!r} executor runs steps with this process's code: drop runtime_env, or "
            f"use executor='ray'"
        )
    _configure_codecs(codecs, allow_unsigned_legacy)
    url = normalize_storage_url(
        storage or os.environ.get(DEFAULT_STORAGE_ENV) or os.path.expanduser(DEFAULT_STORAGE)
    )
    if chosen.has_cluster_host:
        _ensure_ray(ray_address)
    open_storage(url)  # fail now, with the package to install, not at the first step
    # An executor with a cluster-wide host runs engines in the cluster's detached engine actors
    # (which open their own executor there); otherwise engines run in threads of this process.
    host: Any = RayEngineHost(executor, engine_count) if chosen.has_cluster_host else EngineHost(chosen)
    host.configure(max_running_workflows, max_pending_workflows)
    start_collector = functools.partial(PeriodicCollector, url, interval) if interval is not None else None
    host.configure_gc(start_collector)
    previous = _config.installed()
    if previous is not None and previous.host is not host:
        previous.host.configure_gc(None)  # the replaced host stops collecting
    _config.install(
        _config.Config(
            storage_url=url,
            executor=executor,
            has_cluster_host=chosen.has_cluster_host,
            max_running_workflows=max_running_workflows,
            max_pending_workflows=max_pending_workflows,
            host=host,
            settings={
                "storage": url,
                "executor": executor,
                "ray_address": ray_address,
                "max_running_workflows": max_running_workflows,
                "max_pending_workflows": max_pending_workflows,
                "retention": retention,
                "gc_interval": gc_interval,
                "runtime_env": code,
                "engines": engines,
            },
            connection=_ray_connection() if chosen.has_cluster_host else None,
            retention=default_retention,
            runtime_env=code,
            supports_runtime_env=getattr(chosen, "supports_runtime_env", False),
        )
    )


def _ray_connection() -> str | None:
    """The job of this process's Ray connection: a new one after ``ray.shutdown()`` + ``ray.init()``."""
    import ray

    if not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_job_id())


_config.set_initializer(init)
_config.set_connection_probe(_ray_connection)


def _configure_codecs(codecs: Sequence[str] | None, allow_unsigned_legacy: bool | None) -> None:
    """Record the codec choice in the environment, which Ray workers and actor hosts inherit.

    Only names and a flag go there: each process builds its codecs, keys included, itself.
    """
    if codecs is not None:
        if isinstance(codecs, str) or not all(isinstance(name, str) and name for name in codecs):
            raise TypeError(f"codecs must be a list of codec names such as ['sign'], got {codecs!r}")
        build_codecs(list(codecs))  # an unknown name or a missing key fails here, before any write
        os.environ[CODECS_ENV] = ",".join(codecs)
    if allow_unsigned_legacy is not None:
        os.environ[LEGACY_ENV] = "1" if allow_unsigned_legacy else "0"


RAY_CLIENT_PREFIX = "ray://"


def _refuse_ray_client(address: str | None) -> None:
    """Refuse Ray Client (``ray://``) before anything is changed: durably does not support it.

    durably's driver side (the engine host's bookkeeping of what this process started, results
    returned as ObjectRefs of the engine actor, the identity its leases record) is built and
    tested for a process of the cluster (Ray, too, recommends its Jobs API over Ray Client for
    its libraries); rather than half work, it refuses. The supported ways in are
    ``ray job submit`` (KubeRay's RayJob) and a driver on a node with RAY_ADDRESS=host:port or
    ``address="auto"``.
    """
    import ray

    given = address if address is not None else os.environ.get("RAY_ADDRESS", "")
    source = "ray_address" if address is not None else "RAY_ADDRESS"
    # Ray does not annotate it: name its type here rather than call it untyped.
    is_client: Callable[[], bool] = ray.util.client.ray.is_connected
    connected = is_client()
    if not (given or "").startswith(RAY_CLIENT_PREFIX) and not connected:
        return
    where = (
        f"{source}={given!r}"
        if given.startswith(RAY_CLIENT_PREFIX)
        else "this process's ray.init('ray://...')"
    )
    raise ValueError(
        f"durably does not support Ray Client ({where}): run the workflow driver as a process "
        "of the cluster. Submit the driver as a Ray job (`ray job submit --address "
        "http://<head>:8265 -- python driver.py`) or run it on a cluster node with "
        "RAY_ADDRESS=<head>:6379 (or address='auto'); see packages/core/docs/ray-libraries.md"
    )


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


def storage() -> Storage:
    """The Storage workflows of this process are kept in."""
    return open_storage(_config.current().storage_url)


def _resumable_store(workflow_id: str, wait_for_holder: float | None) -> WorkflowStore:
    """Check the workflow exists, then wait (bounded) for a previous driver that is going away.

    Right after a crash, the dead driver's lease holder (its process, or the engine actor of
    the Ray cluster that died with it) takes seconds to exit; resume waits for it instead of
    reporting the workflow as running (``_lease.wait_for_holder``).
    """
    if wait_for_holder is None:
        timeout = lease_seconds()
    elif isinstance(wait_for_holder, bool) or not isinstance(wait_for_holder, (int, float)):
        raise TypeError(f"wait_for_holder must be a number of seconds (or None), got {wait_for_holder!r}")
    elif not wait_for_holder >= 0:
        raise ValueError(f"wait_for_holder must be 0 or more seconds, got {wait_for_holder!r}")
    else:
        timeout = float(wait_for_holder)
    try:
        store = existing_store(workflow_id)
    except WorkflowNotFoundError:
        raise NothingToResumeError(workflow_id) from None
    if workflow_id not in _started_here():  # this process's own run is not a holder to wait for
        wait_for_lease_holder(store.storage, store.lease_key, workflow_id, timeout)
        # Nobody drives it now, so a cancel request left is one nothing answered (it came as the
        # workflow failed, or as its driver died): asking to resume is newer, and the new run
        # must not stop on it. A cancelled workflow stays cancelled (its status; ``drive``
        # refuses it). A run of this process keeps its request: the resume will be refused.
        store.clear_cancel()
    return store


def _upgrade_code(store: WorkflowStore, runtime_env: dict[str, Any] | str | None) -> None:
    """Record a new code snapshot for the workflow, as ``resume(..., runtime_env=...)`` asked."""
    if runtime_env is None:
        return  # the recorded snapshot (or none) stays
    cfg = _config.current()
    if not cfg.supports_runtime_env:
        raise ValueError(
            f"runtime_env needs the ray executor; this process uses {cfg.executor!r}: "
            "call workflow.init(executor='ray')"
        )
    where = f"resume({store.workflow_id!r}, runtime_env=...)"
    if lease_is_live(store.storage, store.lease_key):
        raise WorkflowRunningError(store.workflow_id, "its code can be upgraded once it stopped")
    if runtime_env == UPGRADE:
        recorded = store.load_runtime_env()
        if recorded is None:
            raise ValueError(
                f"{where}: workflow {store.workflow_id!r} has no code snapshot to capture again; "
                "pass a runtime_env dict to give it one"
            )
        record = recapture(store.storage, recorded, where)
    elif isinstance(runtime_env, str):
        raise ValueError(f"{where}: runtime_env is a dict or {UPGRADE!r}, got {runtime_env!r}")
    else:
        checked = check_runtime_env(runtime_env, where)
        assert checked is not None
        record = capture(store.storage, checked)
    store.save_runtime_env(record, replace=True)


def resume(
    workflow_id: str, runtime_env: dict[str, Any] | str | None = None, *, wait_for_holder: float | None = None
) -> Any:
    """Continue a workflow from its checkpoints and return its output; finished steps do not run again.

    Its steps run under the code snapshot recorded at its first run. ``runtime_env="current"``
    upgrades on purpose: the snapshot's folders are captured again as they are now (a dict
    gives the workflow that runtime_env instead); the steps that have not finished run the new code.

    If the workflow's previous driver is still going away (killed, or orphaned by the Ray
    cluster that died under it) or has stopped renewing its lease, this first waits for it, up
    to ``wait_for_holder`` seconds (default: one lease period, ``DURABLY_LEASE_SECONDS``, 30 s),
    saying so once on the ``durably`` logger. A live driver, or one still there after the wait,
    raises :class:`WorkflowRunningError` naming its pid and host and when the workflow can be
    resumed. ``wait_for_holder=0`` never waits.
    """
    cfg = _config.current()
    _upgrade_code(_resumable_store(workflow_id, wait_for_holder), runtime_env)
    return cfg.host.run(cfg.storage_url, workflow_id, None, propagation_context(None))


def resume_async(
    workflow_id: str, runtime_env: dict[str, Any] | str | None = None, *, wait_for_holder: float | None = None
) -> Any:
    """Like ``resume``, but returns a ray.ObjectRef (a Future with the local executor)."""
    cfg = _config.current()
    _upgrade_code(_resumable_store(workflow_id, wait_for_holder), runtime_env)
    return cfg.host.run_async(cfg.storage_url, workflow_id, None, propagation_context(None))


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
def get_status(workflow_id: str) -> WorkflowStatus:
    """The workflow's status; RESUMABLE when it was running but nobody drives it any more."""
    return _status_here(existing_store(workflow_id))


def _status_here(store: WorkflowStore) -> WorkflowStatus:
    """The stored status, RUNNING for a workflow this process's host has started (or resumed)
    but whose engine has not taken its lease yet."""
    started_here = store.workflow_id in _started_here()  # first: a run that ends between is read as ended
    status = status_of(store)
    if status in _RESTARTABLE and started_here:
        return WorkflowStatus.RUNNING
    return status


#: Stored statuses that a new run of the workflow (``run_async``, ``resume_async``) replaces
#: with RUNNING from the start call, as Ray's manager reported, before its engine writes so.
_RESTARTABLE = (WorkflowStatus.RESUMABLE, WorkflowStatus.FAILED, WorkflowStatus.CANCELED)


def _candidate_ids(wanted: set[WorkflowStatus] | None) -> list[str]:
    """The ids ``list_all`` reads: those the status index hints with a wanted status, else all.

    Each is verified by reading its status; a workflow started here shows as RUNNING whatever
    its record says (``_RESTARTABLE``), so RUNNING takes those hints too.
    """
    if wanted is None or not status_index_built(storage()):
        return list_workflow_ids(storage())
    statuses = set(wanted) | (set(_RESTARTABLE) if WorkflowStatus.RUNNING in wanted else set())
    return sorted(hinted_candidates(storage(), statuses))


def _started_here() -> frozenset[str]:
    """Ids this process's engine host was asked to run and has not finished: RUNNING from the
    call that started them, before their engine takes the lease (Ray's manager said so too)."""
    cfg = _config.current()
    return cfg.host.driving(cfg.storage_url)  # type: ignore[no-any-return]


def get_output(
    workflow_id: str, name: str | None = None, timeout: float | None = None, *, task_id: str | None = None
) -> Any:
    """The workflow's output, or a named step's; waits while the workflow is still running.

    ``task_id`` is an alias of ``name``, as Ray 2.x called it.
    """
    return output_of(existing_store(workflow_id), step_name(name, task_id), timeout, _started_here)


def get_metadata(workflow_id: str, name: str | None = None, *, task_id: str | None = None) -> dict[str, Any]:
    """User metadata and timing: of the workflow, or of one of its steps (``name``, or Ray's ``task_id``)."""
    store = existing_store(workflow_id)
    name = step_name(name, task_id)
    if name is not None:
        step_id = find_step(store, name)
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
    status_record = store.load_status_meta() or {}
    stats = {"created_at": meta.get("created_at"), "start_time": status_record.get("started_at")}
    status = status_of(store)
    # A cancelled workflow did not end, it was stopped: as in Ray, it has no end_time (the
    # stored ended_at stays, for the UI).
    if "ended_at" in status_record and status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.FAILED):
        stats["end_time"] = status_record["ended_at"]
    return {
        "workflow_id": workflow_id,
        "status": status.value,
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
    started_here: frozenset[str] | None = None
    for workflow_id in _candidate_ids(wanted):
        try:
            status = status_of(WorkflowStore(storage(), workflow_id))
        except WorkflowNotFoundError:
            continue  # deleted while we listed
        if status in _RESTARTABLE:
            if started_here is None:
                started_here = _started_here()
            if workflow_id in started_here:
                status = WorkflowStatus.RUNNING
        if wanted is None or status in wanted:
            found.append((workflow_id, status))
    return found


# -- changing ---------------------------------------------------------------------------------
def cancel(workflow_id: str, timeout: float = 30.0) -> None:
    """Cancel the workflow: running steps are stopped, its status becomes CANCELED.

    On the ray executor a running step gets Ray's cancel (KeyboardInterrupt in its code, also
    in workers that inherited an ignored SIGINT); on the local executor a step that has not
    started does not start, and one already running in a thread runs to its end. A workflow
    that no driver holds (failed, resumable, or a run not started yet) is marked CANCELED at
    once, and a run that takes it up afterwards stops before its first step.
    """
    cfg = _config.current()
    store = existing_store(workflow_id)
    status = _status_here(store)
    if status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED):
        return
    store.request_cancel()
    deadline = time.monotonic() + timeout
    stopped: Callable[[], bool]
    if status != WorkflowStatus.RUNNING:
        # No driver holds it: record CANCELED here. The request stays, for a driver that takes
        # the lease from now on (a run starting, maybe from a host this process does not know):
        # it finds the request right after taking the lease and stops (``_driver.drive``).
        epoch = current_epoch(store.storage, store.lease_key)
        store.save_status(WorkflowStatus.CANCELED, epoch=epoch, ended_at=time.time())
        # A driver that took the lease while we wrote may have written RUNNING over ours; it
        # stops on the request and records CANCELED before it lets the lease go.
        stopped = lambda: not lease_is_live(store.storage, store.lease_key)  # noqa: E731
    else:
        cfg.host.cancel(cfg.storage_url, workflow_id)
        stopped = lambda: _status_here(store) != WorkflowStatus.RUNNING  # noqa: E731
    while not stopped():
        if time.monotonic() >= deadline:
            raise WorkflowError(
                f"workflow {workflow_id!r} did not stop within {timeout} s of being cancelled"
            )
        time.sleep(0.05)


def delete(workflow_id: str) -> None:
    """Remove a stopped workflow and its keys; if no workflow has the id, the virtual actor that has it."""
    store = workflow_store(workflow_id)
    if not store.exists():
        if delete_actor_if_exists(workflow_id):
            return
        raise WorkflowNotFoundError(workflow_id)
    if lease_is_live(store.storage, store.lease_key) or workflow_id in _started_here():
        raise WorkflowRunningError(workflow_id, "cancel it before deleting it")
    store.delete()
