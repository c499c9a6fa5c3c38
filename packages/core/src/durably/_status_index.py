"""Reading the status index: the candidates of a status filter, counts by status, and its rebuild.

The index is one empty key per (recorded status, workflow): ``statusindex/by/<STATUS>/<id>``
(``_store`` owns the keys and the write side). Listing one status is one listing of one prefix,
on every storage backend, whatever the number of workflows.

**Invariant: the hints are a superset of the truth.** Whenever a workflow exists, the hint of
its recorded status exists (RUNNING while it has no status record), because every writer puts
the hint before the record it describes and checks it after. So a crash at any point, a lost
answer (every write is idempotent and retried) or a racing writer can only leave *extra* hints,
never a missing one; the single exception is a process killed inside ``drop_status_hint``
(between its delete and its re-read) while another writer records that very status, which
``rebuild`` (``durably index rebuild``, and every ``durably gc``) repairs.

What readers do with it:

- a **status filter** lists the hinted ids of the wanted statuses and verifies each one it
  returns against the workflow's own status record (one page: a few reads), so an extra hint is
  never shown; a stale one is removed on the way (``drop_status_hint``), quietly when the
  storage is read-only;
- **counts** take a workflow with one hint at its word, and read the records of the few whose
  word is not enough: those hinted RUNNING (only a lease tells RUNNING from RESUMABLE) and those
  with several hints (a transition cut short). Exact but for the exception above and a hint
  whose workflow vanished without its deletion marker (neither is left by a crash in this
  version's deletion order); ``rebuild`` makes them exact again.

A storage written by a version without the index has no ``statusindex/built`` marker: readers
then read every workflow's status (correct, and as slow as before) until ``rebuild`` ran.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from durably._status import WorkflowStatus
from durably._store import (
    HINTED_STATUSES,
    WorkflowStore,
    list_deleting_ids,
    list_status_hint_ids,
    list_workflow_ids,
    mark_status_index_built,
)
from durably.storage import Storage, StorageError

#: How many workflows' records are read at once (storage reads are mostly waiting on I/O).
_READ_THREADS = 16


def hint_of(status: str) -> str:
    """The hint under which a workflow a reader believes to have ``status`` is found."""
    return WorkflowStatus.RUNNING.value if status == WorkflowStatus.RESUMABLE else status


def hinted_candidates(storage: Storage, wanted: Collection[str]) -> dict[str, set[str]]:
    """Workflow id -> the hints it was found under, for every id hinted with a wanted status."""
    found: dict[str, set[str]] = {}
    for hint in sorted({hint_of(status) for status in wanted}):
        for workflow_id in list_status_hint_ids(storage, hint):
            found.setdefault(workflow_id, set()).add(hint)
    return found


def drop_stale(store: WorkflowStore, hints: Collection[str], believed: str | None) -> None:
    """Remove those of ``hints`` that do not match the status a reader just verified (None: gone).

    A reader may be on read-only credentials: a repair that cannot be written is left to gc.
    """
    for hint in hints:
        if believed is None or hint_of(believed) != hint:
            with contextlib.suppress(StorageError):
                store.drop_status_hint(hint)


def count(storage: Storage, believe: Callable[[str], str | None]) -> Mapping[str, int]:
    """Workflows by status, from the hints; ``believe(id)`` reads one workflow's status (None: gone).

    One listing per status, and records read only for RUNNING and multiply hinted workflows.
    """
    deleting = set(list_deleting_ids(storage))
    hints: dict[str, list[str]] = {}
    for hint in HINTED_STATUSES:
        for workflow_id in list_status_hint_ids(storage, hint):
            hints.setdefault(workflow_id, []).append(hint)
    counts = {status.value: 0 for status in WorkflowStatus}
    doubtful = []
    for workflow_id, found in hints.items():
        if workflow_id in deleting:
            continue
        if len(found) == 1 and found[0] != WorkflowStatus.RUNNING:
            counts[found[0]] += 1
        else:
            doubtful.append(workflow_id)
    with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
        for workflow_id, status in zip(doubtful, pool.map(believe, doubtful), strict=True):
            if status is not None:
                counts[status] += 1
            if len(hints[workflow_id]) > 1 or status is None:
                drop_stale(WorkflowStore(storage, workflow_id), hints[workflow_id], status)
    return counts


@dataclass(frozen=True)
class RebuildReport:
    """What ``rebuild`` changed."""

    #: Workflows whose status was read.
    workflows: int
    #: Hints that were missing (workflows written before the index, or the rare crash) and were put.
    added: int
    #: Stale hints removed (a status since left, a workflow deleted).
    removed: int


def rebuild(storage: Storage) -> RebuildReport:
    """Make the index true for every workflow (reads every status), then mark it built.

    Safe while workflows run: a status recorded meanwhile puts its own hint, and a hint is only
    removed by ``drop_status_hint``, which re-reads the record after deleting.
    """
    hinted = {hint: set(list_status_hint_ids(storage, hint)) for hint in HINTED_STATUSES}
    ids = list_workflow_ids(storage)

    def recorded(workflow_id: str) -> str | None:
        return WorkflowStore(storage, workflow_id).recorded_status()

    with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
        statuses = dict(zip(ids, pool.map(recorded, ids), strict=True))
    added = removed = 0
    for workflow_id, status in statuses.items():
        if status is not None and workflow_id not in hinted.get(status, ()):
            WorkflowStore(storage, workflow_id).put_status_hint(status)
            added += 1
    for hint, hinted_ids in hinted.items():
        for workflow_id in hinted_ids:
            if statuses.get(workflow_id) != hint and WorkflowStore(storage, workflow_id).drop_status_hint(
                hint
            ):
                removed += 1
    mark_status_index_built(storage)
    return RebuildReport(workflows=len(ids), added=added, removed=removed)
