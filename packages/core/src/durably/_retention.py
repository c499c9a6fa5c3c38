"""Retention: how long finished workflows are kept, and the collector that deletes expired ones.

A workflow records its retention (seconds, or none: kept forever) when it is created; once it
is SUCCESSFUL, FAILED or CANCELED, it expires that long after it ended. ``collect_garbage``
deletes what has expired:

- **never a running workflow**: it takes the workflow's lease, as a driver would, and checks the
  status again under it; a resume that holds the lease makes gc skip the workflow, and a resume
  that comes after gc took it is refused as "already running";
- **never half a workflow that looks valid**: the store deletes in an order (see ``_store``) that
  leaves either the whole workflow or an invisible remainder, and the next run finishes any
  deletion a killed collector left behind.

It ends by rebuilding the status index (``_status_index.rebuild``): a collection already reads
every workflow, and this removes the stale hints readers left and restores any that went missing.

Event mailboxes live under their workflow and go with it. Virtual actors have no end; the
collector deletes those idle (no committed call) for longer than ``actors_idle``, when given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from durably._errors import WorkflowNotFoundError, WorkflowRunningError
from durably._lease import Lease
from durably._resolve import open_storage
from durably._status import WorkflowStatus
from durably._status_index import RebuildReport, rebuild
from durably._store import WorkflowStore, list_deleting_ids, list_workflow_ids
from durably.actors._store import ActorStore, list_actor_ids, list_deleting_actor_ids
from durably.storage import Storage

logger = logging.getLogger("durably.gc")

FINAL_STATUSES = frozenset({WorkflowStatus.SUCCESSFUL, WorkflowStatus.FAILED, WorkflowStatus.CANCELED})


@dataclass(frozen=True)
class GcReport:
    """What one collection did (or, on a dry run, would do)."""

    #: Workflows deleted (expired, checked under their lease).
    deleted: tuple[str, ...]
    #: Deletions that an earlier, interrupted collection had begun, finished now.
    finished: tuple[str, ...]
    #: (workflow id, why) of expired workflows left alone, e.g. being resumed right now.
    skipped: tuple[tuple[str, str], ...]
    #: Virtual actors deleted for being idle.
    actors: tuple[str, ...]
    dry_run: bool = False
    #: What the status index rebuild at the end changed (None on a dry run).
    index: RebuildReport | None = None


def expiry(meta: dict[str, Any], record: dict[str, Any] | None, older_than: float | None) -> float | None:
    """When a workflow may be deleted (unix seconds), or None: not finished, or kept forever.

    ``older_than`` replaces the workflow's own retention.
    """
    if record is None or record.get("status") not in FINAL_STATUSES or not record.get("ended_at"):
        return None
    keep = older_than if older_than is not None else meta.get("retention")
    return None if keep is None else float(record["ended_at"]) + float(keep)


class _Collector:
    def __init__(
        self,
        storage: Storage,
        now: float,
        older_than: float | None,
        statuses: Collection[str] | None,
        dry_run: bool,
    ) -> None:
        self.storage = storage
        self.now = now
        self.older_than = older_than
        self.statuses = None if statuses is None else {WorkflowStatus(s.upper()).value for s in statuses}
        self.dry_run = dry_run
        self.deleted: list[str] = []
        self.skipped: list[tuple[str, str]] = []

    def expired(self, store: WorkflowStore) -> bool:
        record = store.load_status_meta()
        if record is None or (self.statuses is not None and record.get("status") not in self.statuses):
            return False
        try:
            meta = store.load_meta()
        except WorkflowNotFoundError:  # deleted meanwhile
            return False
        expires_at = expiry(meta, record, self.older_than)
        return expires_at is not None and expires_at <= self.now

    def collect(self, workflow_id: str) -> None:
        store = WorkflowStore(self.storage, workflow_id)
        if not self.expired(store):
            return
        if self.dry_run:
            self.deleted.append(workflow_id)
            return
        lease = Lease(store.storage, store.lease_key, store.workflow_id)
        try:
            lease.acquire()
        except WorkflowRunningError:
            self.skipped.append((workflow_id, "a driver holds it (it is being resumed)"))
            return
        try:
            # A resume may have run between the first look and the lease: decide again.
            if not self.expired(store):
                self.skipped.append((workflow_id, "it changed while gc looked at it"))
                lease.release()
                return
            store.begin_delete()
        except BaseException:
            lease.release()
            raise
        lease.stop_renewing()  # its records go with the rest
        store.finish_delete()
        self.deleted.append(workflow_id)


def collect_garbage(
    storage: Storage,
    *,
    older_than: float | None = None,
    statuses: Collection[str] | None = None,
    actors_idle: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> GcReport:
    """Delete the finished workflows that have expired (and, with ``actors_idle``, idle actors).

    ``older_than`` (seconds) replaces each workflow's own retention: any finished workflow that
    ended longer ago goes. ``statuses`` narrows it to some final statuses. ``dry_run`` deletes
    nothing and reports what would go.
    """
    collector = _Collector(storage, time.time() if now is None else now, older_than, statuses, dry_run)
    finished: list[str] = []
    if not dry_run:
        for workflow_id in list_deleting_ids(storage):
            store = WorkflowStore(storage, workflow_id)
            if store.exists():  # stopped before it hid the workflow: decide again, under the lease
                collector.collect(workflow_id)
                if workflow_id not in collector.deleted:
                    store.forget_deletion()
            else:
                store.finish_delete()
                finished.append(workflow_id)
    for workflow_id in list_workflow_ids(storage):
        if workflow_id not in collector.deleted:
            collector.collect(workflow_id)
    actors = _collect_actors(storage, collector.now, actors_idle, dry_run) if actors_idle is not None else []
    return GcReport(
        index=None if dry_run else rebuild(storage),
        deleted=tuple(collector.deleted),
        finished=tuple(finished),
        skipped=tuple(collector.skipped),
        actors=tuple(actors),
        dry_run=dry_run,
    )


def _collect_actors(storage: Storage, now: float, idle: float, dry_run: bool) -> list[str]:
    deleted = []
    if not dry_run:
        for actor_id in list_deleting_actor_ids(storage):
            ActorStore(storage, actor_id).finish_delete()
    for actor_id in list_actor_ids(storage):
        store = ActorStore(storage, actor_id)
        seqs = store.stored_seqs()
        head = store.read_meta(seqs[-1]) if seqs else None
        last = head.get("committed_at") if head else None
        if last is None or float(last) + idle > now:
            continue
        if not dry_run:
            store.begin_delete()
            store.finish_delete()
        deleted.append(actor_id)
    return deleted


class PeriodicCollector:
    """Runs ``collect_garbage`` on one storage every ``interval`` seconds, in a daemon thread."""

    def __init__(self, storage_url: str, interval: float) -> None:
        self.storage_url = storage_url
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durably-gc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = collect_garbage(open_storage(self.storage_url))
            except Exception:  # the next round tries again; a storage hiccup must not end the thread
                logger.exception("durably gc on %s failed", self.storage_url)
                continue
            if report.deleted or report.finished:
                logger.info("durably gc deleted %d workflows", len(report.deleted) + len(report.finished))

    def stop(self) -> None:
        self._stop.set()
