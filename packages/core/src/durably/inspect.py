"""The read model of stored workflows and actors, shared by the ``durably`` CLI and the UI.

An :class:`Inspector` reads a storage and nothing else: it never starts or joins Ray, and it never
unpickles a user object unless asked to (``allow_unpickle=True``, for showing an output or an
actor's state). Everything it returns is frozen plain data. Actions (resume, cancel, delete,
send_event) go through ``durably.workflow``.

Cost: listing is one listing of the workflow index plus a few small reads per workflow returned
(done in parallel), whatever the number of workflows stored. A status filter lists only the
workflows hinted with that status (``durably._status_index``) and verifies each one it returns
against its status record; ``count_by_status`` is one listing per status plus reads of the
RUNNING ones. A filter on time reads the workflows it skips, until the page is full. On a storage
whose status index was never built (written by an older version: ``durably index rebuild``),
status filters and counts read every workflow's status instead.
"""

from __future__ import annotations

import bisect
import concurrent.futures
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from durably import _codec
from durably._errors import WorkflowError, WorkflowNotFoundError
from durably._ids import validate_workflow_id
from durably._inspect import believed_status
from durably._resolve import normalize_storage_url, open_storage
from durably._retention import FINAL_STATUSES, expiry
from durably._status import WorkflowStatus
from durably._status_index import RebuildReport, drop_stale, hinted_candidates, rebuild
from durably._status_index import count as count_from_index
from durably._store import WorkflowStore, list_workflow_ids, status_index_built
from durably.actors._store import ActorStore, list_actor_ids
from durably.codecs import checks_signatures

T = TypeVar("T")

#: How many workflows' records are read at once (storage reads are mostly waiting on I/O).
_READ_THREADS = 16


class OutputNotLoadedError(WorkflowError):
    """Showing the value needs unpickling a stored object, which the caller did not allow."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"showing {what} means unpickling it, which can run code from the storage; "
            "pass allow_unpickle=True if you trust this storage"
        )


@dataclass(frozen=True)
class ErrorView:
    """A failure as text."""

    type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class WorkflowSummary:
    """One line of a workflow listing."""

    workflow_id: str
    #: A :class:`~durably.workflow.WorkflowStatus` value: RUNNING, SUCCESSFUL, FAILED, RESUMABLE, ...
    status: str
    #: Unix seconds.
    created: float | None
    updated: float | None
    steps_finished: int
    #: None while unknown (a dynamic graph may still grow).
    steps_total: int | None
    #: Seconds from start to end of the last run, for finished workflows.
    duration: float | None


@dataclass(frozen=True)
class StepView:
    """One step of a workflow, with the steps of the sub-graph it returned (its continuation)."""

    step_id: str
    name: str
    #: SUCCESSFUL, FAILED, RUNNING (its inputs are ready and the workflow is being driven), or
    #: PENDING (not started, or unknown).
    status: str
    #: 0 when unknown.
    attempts: int
    #: Unix seconds, and seconds to its end; for the step that failed the workflow, from its first
    #: attempt's start to its last attempt's end (None in records written before they were kept).
    start: float | None
    duration: float | None
    #: The step's user metadata.
    metadata: Mapping[str, Any]
    #: Ids of the steps whose outputs it consumes.
    depends_on: tuple[str, ...]
    children: tuple[StepView, ...]
    error: ErrorView | None


@dataclass(frozen=True)
class WorkflowDetail:
    """Everything ``durably show`` prints about one workflow."""

    summary: WorkflowSummary
    metadata: Mapping[str, Any]
    error: ErrorView | None
    #: The top-level graph's steps, in topological order.
    steps: tuple[StepView, ...]
    #: When gc may delete it (None: kept forever, or not finished).
    expires_at: float | None
    #: True when the step tree was cut at ``max_steps`` steps (a long dynamic loop, say).
    steps_truncated: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: tuple[T, ...]
    #: Pass as ``after`` to get the next page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class ActorSummary:
    """One virtual actor."""

    actor_id: str
    class_name: str
    #: Calls committed since it was constructed.
    calls: int
    updated: float | None


@dataclass(frozen=True)
class ActorCall:
    """One committed call of a virtual actor."""

    seq: int
    method: str
    status: str
    start: float | None
    duration: float | None


@dataclass(frozen=True)
class ActorDetail:
    """An actor with its most recent calls (older ones are compacted away)."""

    summary: ActorSummary
    recent_calls: tuple[ActorCall, ...]
    #: The state's repr, truncated; None unless unpickling was allowed.
    state_preview: str | None


@dataclass
class _Frame:
    """A graph whose step views are being built (the top level, or one step's continuation)."""

    outline: list[Any]
    owner: str | None
    index: int = 0
    built: list[StepView] = field(default_factory=list)


class Inspector:
    """Reads the workflows and actors of one storage; cheap to create, safe to share between threads."""

    def __init__(self, storage_url: str) -> None:
        self.storage_url = normalize_storage_url(storage_url)
        self.storage = open_storage(self.storage_url)
        #: True when this process checks the signature of every record it reads (a ``sign``
        #: codec, no unsigned-legacy window): a tampered output is refused, not unpickled.
        self.signed = checks_signatures(self.storage)

    # -- workflows ----------------------------------------------------------------------------
    def _store(self, workflow_id: str) -> WorkflowStore:
        return WorkflowStore(self.storage, validate_workflow_id(workflow_id))

    def list_workflows(
        self,
        *,
        status: Collection[str] | None = None,
        prefix: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[WorkflowSummary]:
        """Workflows newest id first (generated ids sort by creation time), filtered, one page.

        ``since``/``until`` bound the creation time (unix seconds, inclusive); ``after`` is the
        ``next_cursor`` of the previous page.
        """
        wanted = _statuses(status)
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        hints: dict[str, set[str]] = {}
        if wanted is not None and self.status_index_built():
            hints = hinted_candidates(self.storage, wanted)
            ids = sorted(hints)
        else:
            ids = list_workflow_ids(self.storage)
        end = len(ids) if after is None else bisect.bisect_left(ids, after)
        start = 0
        if prefix:
            start = bisect.bisect_left(ids, prefix)
            end = min(end, bisect.bisect_left(ids, prefix + "\U0010ffff"))
        candidates = ids[start:end][::-1]
        found: list[WorkflowSummary] = []
        position = 0
        with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
            while position < len(candidates) and len(found) < limit:
                batch = candidates[position : position + max(limit - len(found), _READ_THREADS)]
                position += len(batch)
                for workflow_id, summary in zip(batch, pool.map(self._summary_or_none, batch), strict=True):
                    if workflow_id in hints:  # verified now: a stale hint goes
                        believed = None if summary is None else summary.status
                        drop_stale(self._store(workflow_id), hints[workflow_id], believed)
                    if summary is None or (wanted is not None and summary.status not in wanted):
                        continue
                    if since is not None and (summary.created is None or summary.created < since):
                        continue
                    if until is not None and (summary.created is None or summary.created > until):
                        continue
                    found.append(summary)
                    if len(found) == limit:
                        break
        more = len(found) == limit and found[-1].workflow_id != candidates[-1]
        return Page(tuple(found), found[-1].workflow_id if more else None)

    def status_index_built(self) -> bool:
        """Whether status filters and counts use the status index (see :meth:`rebuild_status_index`)."""
        return status_index_built(self.storage)

    def rebuild_status_index(self) -> RebuildReport:
        """Make the status index true for every workflow and mark it built (reads every status).

        Needed once for a storage written by a version before the index; safe while workflows run.
        """
        return rebuild(self.storage)

    def count_by_status(self) -> Mapping[str, int]:
        """How many workflows have each status.

        From the status index when it is built: one listing per status, and the status records of
        the RUNNING ones (RUNNING or RESUMABLE is a matter of their lease) and of any workflow
        with more than one hint (a status change cut short). Otherwise every workflow's status is
        read.
        """
        if self.status_index_built():
            return count_from_index(self.storage, self._status_or_none)
        counts = {status.value: 0 for status in WorkflowStatus}
        with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
            for found in pool.map(self._status_or_none, list_workflow_ids(self.storage)):
                if found is not None:
                    counts[found] += 1
        return counts

    def _status_or_none(self, workflow_id: str) -> str | None:
        store = WorkflowStore(self.storage, workflow_id)
        return _status(store, store.load_status_meta())

    def _summary_or_none(self, workflow_id: str) -> WorkflowSummary | None:
        try:
            return self._summary(WorkflowStore(self.storage, workflow_id))[0]
        except WorkflowNotFoundError:
            return None  # deleted while we listed

    def _summary(self, store: WorkflowStore) -> tuple[WorkflowSummary, dict[str, Any], dict[str, Any]]:
        meta = store.load_meta()
        record = store.load_status_meta() or {}
        status = _status(store, record or None)
        if status is None:
            raise WorkflowNotFoundError(store.workflow_id)
        values, continuations = store.finished_steps()
        total = meta.get("step_count")
        if continuations:
            total = len(values) + len(continuations) if status == WorkflowStatus.SUCCESSFUL else None
        started, ended = record.get("started_at"), record.get("ended_at")
        summary = WorkflowSummary(
            workflow_id=store.workflow_id,
            status=status,
            created=meta.get("created_at"),
            updated=record.get("updated_at", meta.get("created_at")),
            steps_finished=len(values) + len(continuations),
            steps_total=total if isinstance(total, int) else None,
            duration=ended - started if status in FINAL_STATUSES and started and ended else None,
        )
        return summary, meta, record

    def get_summary(self, workflow_id: str) -> WorkflowSummary:
        """One workflow's summary line; raises WorkflowNotFoundError for an unknown id."""
        return self._summary(self._store(workflow_id))[0]

    def get_workflow(self, workflow_id: str, *, max_steps: int = 5000, max_depth: int = 64) -> WorkflowDetail:
        """Status, metadata, error and the step tree of one workflow.

        The tree holds at most ``max_steps`` steps and nests continuations at most ``max_depth``
        deep (a loop of 100,000 iterations is a chain of 100,000 continuations);
        ``steps_truncated`` says when it was cut.

        Raises :class:`~durably.workflow.WorkflowNotFoundError` for an unknown id.
        """
        store = self._store(workflow_id)
        summary, meta, record = self._summary(store)
        error = _error_view(record)
        expires_at = expiry(meta, record, None)
        steps, truncated = _StepTree(store, summary.status, record, error, max_steps, max_depth).build()
        return WorkflowDetail(
            summary=summary,
            metadata=meta.get("user_metadata", {}),
            error=error,
            steps=steps,
            expires_at=expires_at,
            steps_truncated=truncated,
        )

    def load_output(self, workflow_id: str, step_id: str | None = None) -> Any:
        """Unpickle and return the workflow's output, or a finished step's (by id or name).

        Loads a stored object: only for storages you trust. Raises WorkflowError when it has not
        finished, WorkflowNotFoundError for an unknown workflow or step.
        """
        store = self._store(workflow_id)
        if not store.exists():
            raise WorkflowNotFoundError(workflow_id)
        if step_id is None:
            output_step = store.result_step_id()
            if output_step is None:
                raise WorkflowError(f"workflow {workflow_id!r} has no output yet (it has not succeeded)")
            return store.load_step_output(output_step)
        return store.load_step_output(_finished_value_step(store, step_id))

    def output_preview(
        self,
        workflow_id: str,
        step_id: str | None = None,
        *,
        max_chars: int | None = 2000,
        allow_unpickle: bool = False,
    ) -> str:
        """The ``repr`` of an output (see :meth:`load_output`), cut at ``max_chars``.

        Refuses with :class:`OutputNotLoadedError` unless ``allow_unpickle``.
        """
        what = f"the output of workflow {workflow_id!r}" + (f" step {step_id!r}" if step_id else "")
        if not allow_unpickle:
            raise OutputNotLoadedError(what)
        return _cut(repr(self.load_output(workflow_id, step_id)), max_chars)

    # -- actors -------------------------------------------------------------------------------
    def list_actors(self, *, limit: int = 50, after: str | None = None) -> Page[ActorSummary]:
        """Virtual actors by id, one page; ``after`` is the previous page's ``next_cursor``."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        ids = list_actor_ids(self.storage)
        start = 0 if after is None else bisect.bisect_right(ids, after)
        chosen = ids[start : start + limit]
        with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
            found = [item for item in pool.map(self._actor_or_none, chosen) if item is not None]
        more = start + limit < len(ids)
        return Page(tuple(found), chosen[-1] if more and chosen else None)

    def _actor_or_none(self, actor_id: str) -> ActorSummary | None:
        try:
            return self._actor_summary(ActorStore(self.storage, actor_id))[0]
        except WorkflowNotFoundError:
            return None

    def _actor_summary(self, store: ActorStore) -> tuple[ActorSummary, list[int]]:
        marker = store.load_marker()
        if marker is None:
            raise WorkflowNotFoundError(store.actor_id, "it is not a workflow or a virtual actor")
        seqs = store.stored_seqs()
        head = store.read_meta(seqs[-1]) if seqs else None
        summary = ActorSummary(
            actor_id=store.actor_id,
            class_name=str(marker.get("class_name", "?")),
            calls=seqs[-1] if seqs else 0,
            updated=head.get("committed_at") if head else None,
        )
        return summary, seqs

    def get_actor(self, actor_id: str, *, recent: int = 20, allow_unpickle: bool = False) -> ActorDetail:
        """An actor, its ``recent`` last calls, and (if allowed) a preview of its state."""
        store = ActorStore(self.storage, actor_id)
        summary, seqs = self._actor_summary(store)
        calls = []
        for seq in seqs[-recent:] if recent > 0 else []:
            meta = store.read_meta(seq)
            if meta is None:
                continue  # compacted while we read
            committed = meta.get("committed_at")
            started = meta.get("started_at")
            calls.append(
                ActorCall(
                    seq=seq,
                    method=str(meta.get("method", "?")),
                    status=WorkflowStatus.SUCCESSFUL.value,
                    start=started,
                    duration=committed - started if committed and started else None,
                )
            )
        preview = None
        if allow_unpickle and seqs:
            record = store.read(seqs[-1])
            if record is not None:
                preview = _cut(repr(_codec.loads(record.state)), 2000)
        return ActorDetail(summary, tuple(reversed(calls)), preview)


def _statuses(status: Collection[str] | None) -> set[str] | None:
    if status is None:
        return None
    if isinstance(status, str):
        status = [status]
    try:
        return {WorkflowStatus(str(item).upper()).value for item in status}
    except ValueError:
        names = ", ".join(item.value for item in WorkflowStatus)
        raise ValueError(f"unknown status in {sorted(status)!r}; statuses are {names}") from None


def _status(store: WorkflowStore, record: dict[str, Any] | None) -> str | None:
    """The status a reader should believe (``_inspect.believed_status``); None: deleted."""
    if record is None and not store.exists():
        return None
    return believed_status(store, record).value


def _error_view(record: Mapping[str, Any]) -> ErrorView | None:
    if "error" not in record:
        return None
    text = str(record["error"])
    kind, _, message = text.partition(": ")
    return ErrorView(
        type=str(record.get("error_type", kind)),
        message=str(record.get("error_message", message)),
        traceback=str(record.get("traceback", text)),
    )


def _cut(text: str, max_chars: int | None) -> str:
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - 1)] + "…"


def _finished_value_step(store: WorkflowStore, step: str) -> str:
    """The id of the step holding ``step``'s value (by id or name), following continuations."""
    values, continuations = store.finished_steps()
    step_id = step if step in values or step in continuations else store.step_id_for_name(step)
    if step_id is None:
        outline = store.load_graph_outline() or []
        if any(entry[0] == step for entry in outline):
            raise WorkflowError(f"step {step!r} of workflow {store.workflow_id!r} has not finished yet")
        raise WorkflowNotFoundError(store.workflow_id, f"it has no step named {step!r}")
    seen = 0
    while step_id not in values:
        if step_id not in continuations or seen > len(continuations):
            raise WorkflowError(f"step {step!r} of workflow {store.workflow_id!r} has not finished yet")
        outline = store.load_step_meta(step_id).get("outline") or []
        if not outline:
            raise WorkflowError(
                f"step {step!r} of workflow {store.workflow_id!r}: its continuation is unreadable"
            )
        step_id = outline[-1][0]
        seen += 1
    return step_id


class _StepTree:
    """Builds a workflow's step views, continuations nested, without recursion."""

    def __init__(
        self,
        store: WorkflowStore,
        status: str,
        record: Mapping[str, Any],
        error: ErrorView | None,
        max_steps: int,
        max_depth: int,
    ) -> None:
        self.store = store
        self.driven = status == WorkflowStatus.RUNNING
        self.failed_step = record.get("failed_step") if status == WorkflowStatus.FAILED else None
        self.failed_attempts = record.get("failed_attempts")
        self.failed_times = {
            "start_time": record.get("failed_step_start"),
            "end_time": record.get("failed_step_end"),
        }
        self.error = error
        self.values, self.continuations = store.finished_steps()
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.count = 0

    def build(self) -> tuple[tuple[StepView, ...], bool]:
        outline = self.store.load_graph_outline()
        truncated = False
        if outline is None:  # stored before graphs had outlines: show what finished
            outline = [[step_id, step_id, []] for step_id in sorted(self.values | self.continuations)]
        stack = [_Frame(outline, None)]
        pending_meta: list[dict[str, Any]] = []
        while True:
            frame = stack[-1]
            if frame.index == len(frame.outline) or self.count >= self.max_steps:
                truncated = truncated or frame.index < len(frame.outline)
                stack.pop()
                if not stack:
                    return tuple(frame.built), truncated
                parent = stack[-1]
                step_id, name, depends_on = parent.outline[parent.index]
                parent.built.append(self._view(step_id, name, depends_on, pending_meta.pop(), frame.built))
                parent.index += 1
                continue
            step_id, name, depends_on = frame.outline[frame.index]
            self.count += 1
            if step_id in self.continuations:
                meta = self.store.load_step_meta(step_id)
                if len(stack) <= self.max_depth:
                    pending_meta.append(meta)
                    stack.append(_Frame(meta.get("outline") or [], step_id))
                    continue
                truncated = True
                meta = {**meta, "unexpanded": True}
            meta = self.store.load_step_meta(step_id) if step_id in self.values else {}
            frame.built.append(self._view(step_id, name, depends_on, meta, []))
            frame.index += 1

    def _view(
        self,
        step_id: str,
        name: str,
        depends_on: Iterable[str],
        meta: Mapping[str, Any],
        children: list[StepView],
    ) -> StepView:
        depends_on = tuple(depends_on)
        error = None
        attempts = meta.get("attempts")
        if children:
            status = children[-1].status  # the sub-graph's output stands for the step's value
        elif meta.get("unexpanded"):  # a continuation below the depth shown: its output tells
            outline = meta.get("outline") or [[step_id]]
            done = outline[-1][0] in self.values
            status = WorkflowStatus.SUCCESSFUL.value if done else WorkflowStatus.PENDING.value
        elif step_id in self.values or step_id in self.continuations:
            status = WorkflowStatus.SUCCESSFUL.value
        elif step_id == self.failed_step:
            status, error = WorkflowStatus.FAILED.value, self.error
            attempts = self.failed_attempts
            meta = {**meta, **self.failed_times}  # its attempts' start and end, from the status record
        elif self.driven and all(dep in self.values or dep in self.continuations for dep in depends_on):
            status = WorkflowStatus.RUNNING.value
        else:
            status = WorkflowStatus.PENDING.value
        start, end = meta.get("start_time"), meta.get("end_time")
        return StepView(
            step_id=step_id,
            name=str(meta.get("name") or name),
            status=status,
            attempts=attempts if isinstance(attempts, int) else 0,
            start=start,
            duration=end - start if start is not None and end is not None else None,
            metadata=meta.get("user_metadata") or {},
            depends_on=depends_on,
            children=tuple(children),
            error=error,
        )


__all__ = [
    "ActorCall",
    "ActorDetail",
    "ActorSummary",
    "ErrorView",
    "Inspector",
    "OutputNotLoadedError",
    "Page",
    "StepView",
    "WorkflowDetail",
    "WorkflowSummary",
]
