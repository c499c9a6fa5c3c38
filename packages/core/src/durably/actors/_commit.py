"""Applying calls to virtual actors: the optimistic transaction and the per-process cache.

A mutating call reads the head record (the latest committed state), applies the method to a
fresh copy of that state and commits ``log/<head + 1>`` with ``put_if_absent``, carrying the
call ids of the records below it (``ancestry``). If another writer took that seq first, the
call re-reads the new head and is applied again. A writer that finds its base compacted after
writing tells a stale write (the slot had been compacted before) from a commit others built on
by the current head's ancestry, so a stalled writer never applies a committed call twice. Each process
keeps the head it last saw and probes forward (``get`` of head + 1) instead of listing the log;
the listing is only for recovery. A writer whose own commit is the head it knows does not probe
before its next call: a commit by anyone else since would hold head + 1, so the conditional write
fails and the call is applied again on the re-read head (on the Ray host, the actor's only
writer, a call costs that write and the check that its base still stands). Where calls run,
one at a time per actor, is ``_dispatch``'s job.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from durably import _codec
from durably._errors import ActorMethodError, ActorNotFoundError, WorkflowError
from durably._plugins import hook
from durably._resolve import open_storage
from durably.actors._class import find_method, get_state, load_class, restore
from durably.actors._store import (
    ANCESTRY,
    COMPACT_EVERY,
    KEEP,
    ActorStore,
    CallRecord,
    call_mark,
)
from durably.actors._subworkflows import delete_workflows, finish_returned_steps
from durably.actors._target import RunningCall, Target, current_call
from durably.storage import KeyNotFound, TransientStorageError, retry_transient

#: How often a commit that meets transient storage errors is tried before the error is raised.
APPEND_ATTEMPTS = 8

#: A process that fell further behind than this many commits re-reads the log by listing it.
MAX_PROBE = 64

_log = logging.getLogger(__name__)


class ActorCore:
    """One process's view of one actor: the head it last saw, recent call ids, and the commit protocol."""

    def __init__(self, storage_url: str, actor_id: str) -> None:
        self.store = ActorStore(open_storage(storage_url), actor_id)
        self.actor_id = actor_id
        self._lock = threading.Lock()
        self._cls: type | None = None
        self._incarnation: str | None = None
        self._head: CallRecord | None = None
        # Whether ``_head`` is this process's own latest commit (a writer then skips the probe).
        self._head_is_own = False
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()
        #: Whether compaction runs behind the call that triggers it (see ``compact_behind_calls``).
        self._compact_behind = False
        self._compactor: concurrent.futures.ThreadPoolExecutor | None = None
        self._compaction: concurrent.futures.Future[int] | None = None

    def compact_behind_calls(self) -> None:
        """Run each compaction in a thread behind the call that triggered it (the Ray host does).

        Compaction deletes a file per call, which on a disk with online discard costs as much as
        the commit's own write; behind the call, it overlaps with the next calls instead of
        delaying the one that triggered it. It runs alongside this process's next commits as it
        already runs alongside other processes' writers and readers, so the protocol is the same.
        One runs at a time: the next one waits for it, so the log holds at most ``COMPACT_EVERY``
        more records than with compaction in line.
        """
        self._compact_behind = True

    # -- reading the head ---------------------------------------------------------------------
    def _load_identity(self) -> None:
        try:
            meta, payload = self.store.load_class_record()
        except KeyNotFound:
            raise ActorNotFoundError(self.actor_id) from None
        self._incarnation = str(meta["incarnation"])
        self._cls = load_class(payload)

    def _remember(self, record: CallRecord) -> None:
        self._recent[record.call_id] = record.seq
        while len(self._recent) > KEEP + COMPACT_EVERY:
            self._recent.popitem(last=False)

    def _recover(self) -> None:
        """Find the head by listing the log (cold cache, or this process fell far behind).

        Only the unbroken run under the highest record counts: a stale record that a stalled
        writer left below it (in a slot compaction had emptied) names a call that was never
        applied, and must not answer that call's retry.
        """
        self._load_identity()
        self._head = None
        self._head_is_own = False
        self._recent.clear()
        found: list[CallRecord] = []
        for seq in reversed(self.store.stored_seqs()):
            record = self.store.read(seq)
            if record is None or record.incarnation != self._incarnation:
                if found:
                    break  # compacted while we listed: the run ends here
                continue
            if found and not found[-1].rests_on(record):
                break  # a stale record, or a gap: the run ends here
            found.append(record)
        if not found:
            raise ActorNotFoundError(self.actor_id)
        for record in reversed(found):
            self._remember(record)
        self._head = found[0]

    def _on_foreign_record(self, record: CallRecord) -> None:
        """A record of another incarnation ahead: ours is stale, or it is a deleted one's leftover."""
        known = self._incarnation
        self._load_identity()
        if self._incarnation != known:
            self._recover()  # the actor was deleted and created again since this process looked
        else:
            self.store.forget(record.seq)  # written by a deleted incarnation's late writer

    def actor_class(self) -> type:
        with self._lock:
            if self._cls is None:
                self._load_identity()
            assert self._cls is not None
            return self._cls

    def sync(self, verify: bool = True) -> tuple[type, CallRecord]:
        """The class and the latest committed record, probing forward from what this process saw.

        With ``verify``, a head that nothing followed is checked to still exist: if it was
        compacted away, this process fell behind and re-reads the log. A writer skips this, as
        its commit checks the same thing afterwards.

        Each record probed must rest on the one before it, else one of them was stale and the
        log is re-read. A probe that moved forward and then found an empty slot checks that the
        record below where it stopped still exists, writers too: a record whose base is gone may be a stale
        one (a killed writer's, left in a slot compaction emptied, resting on this process's old
        head), and the real head is then far ahead. Compaction deletes oldest first, so the base
        of the real head is never gone before the head; when it is, the log is re-read.
        """
        with self._lock:
            if self._head is None:
                self._recover()
            for probe in range(MAX_PROBE):
                assert self._head is not None
                record = self.store.read(self._head.seq + 1)
                if record is None:
                    if probe == 0:
                        if verify and not self.store.has(self._head.seq):
                            self._recover()
                    elif not self.store.has(self._head.seq - 1):
                        self._recover()
                    break
                if record.incarnation != self._incarnation:
                    self._on_foreign_record(record)
                    continue
                if not record.rests_on(self._head):
                    self._recover()  # the record probed before this one was stale: its call is not ours
                    continue
                self._head = record
                self._head_is_own = False
                self._remember(record)
            else:
                self._recover()
            assert self._cls is not None and self._head is not None
            return self._cls, self._head

    def forget_cache(self) -> None:
        with self._lock:
            self._head = None
            self._head_is_own = False
            self._recent.clear()

    def _writer_head(self) -> tuple[type, CallRecord]:
        """The class and the head a writer builds its next commit on.

        This process's own last commit as it stands, without a storage read: anyone else's commit
        since holds head + 1, so the conditional write at head + 1 fails and the writer re-reads.
        Otherwise the probed head (``sync``).
        """
        with self._lock:
            if self._head_is_own and self._cls is not None and self._head is not None:
                return self._cls, self._head
        return self.sync(verify=False)

    def committed_result(self, call_id: str, retryable: bool = True) -> tuple[bool, Any]:
        """(True, result) when a call with this id was committed, else (False, None).

        Looked for among the recent commits, then, for a ``retryable`` call, among the compacted
        calls (``calls/``), so a caller that restarts slowly while others commit many calls still
        gets its own result. Other calls are not kept there: one storage read is saved.
        """
        with self._lock:
            seq = self._recent.get(call_id)
        if seq is not None:
            record = self.store.read(seq)
            if record is not None and record.call_id == call_id:
                return True, _codec.loads(record.result)
        indexed = self.store.find_call(call_id) if retryable else None
        if indexed is not None:
            return True, _codec.loads(indexed.result)
        if seq is not None:
            raise WorkflowError(
                f"call {call_id!r} of virtual actor {self.actor_id!r} was committed at seq {seq}, "
                "but its record has been compacted away without being indexed, so its result is gone"
            )
        return False, None

    # -- applying a call ----------------------------------------------------------------------
    def apply(
        self,
        target: Target,
        method: str,
        args: Any,
        kwargs: Any,
        call_id: str,
        context: Mapping[str, str] | None = None,
        retryable: bool = True,
    ) -> Any:
        """Apply a mutating call exactly once and return its result (see the module docstring).

        ``retryable``: whether the call id may be sent again later (``CallRecord.retryable``).
        """
        with _observed_call(self.actor_id, method, False, context):
            return self._apply(target, method, args, kwargs, call_id, retryable)

    def _apply(
        self, target: Target, method: str, args: Any, kwargs: Any, call_id: str, retryable: bool
    ) -> Any:
        while True:
            cls, head = self._writer_head()
            found, result = self.committed_result(call_id, retryable)
            if found:
                return result
            self._refuse_if_applied_long_ago(head, call_id)
            func = find_method(cls, self.actor_id, method)
            instance = restore(cls, _codec.loads(head.state))
            seq = head.seq + 1
            token = current_call.set(RunningCall(target, instance, readonly=False))
            try:
                result = func(instance, *args, **kwargs)
                result, subworkflows = finish_returned_steps(self.actor_id, instance, result, seq, call_id)
            except Exception as error:
                raise ActorMethodError(self.actor_id, method, error) from error
            finally:
                current_call.reset(token)
            record = CallRecord(
                seq,
                call_id,
                method,
                head.incarnation,
                _codec.dumps(get_state(instance)),
                _codec.dumps(result),
                ancestry=(call_mark(head.call_id), *head.ancestry)[:ANCESTRY],
                retryable=retryable,
            )
            if not self._append(record):
                with self._lock:
                    self._head_is_own = False  # another writer committed this seq: re-read the head
                continue
            if not self.store.has(head.seq) and not self._commit_stands(record):
                # Our slot had been compacted before we wrote it: the write is stale, not a commit.
                # Deleted at once, so no reader takes it for the call's commit (readers also skip
                # it, should this process die first); the call is then looked for and applied anew.
                self.store.forget(seq)
                self.forget_cache()
                continue
            with self._lock:
                if self._head is None or self._head.seq < seq:
                    self._head = record
                    self._head_is_own = True
                self._remember(record)
            if seq % COMPACT_EVERY == 0:
                self._compact(record)
            delete_workflows(self.store, subworkflows)
            return result

    def _compact(self, head: CallRecord) -> None:
        if not self._compact_behind:
            self.store.compact(head)
            return
        if self._compactor is None:
            self._compactor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="durably-actor-compaction"
            )
        self._finish_compaction()
        self._compaction = self._compactor.submit(self.store.compact, head)

    def _finish_compaction(self) -> None:
        """Wait for the compaction running behind an earlier call, if any.

        A failed one is logged, not raised: the call it ran behind has returned, the call now
        committing has nothing to do with it, and this next compaction deletes what it left.
        """
        compaction, self._compaction = self._compaction, None
        if compaction is None:
            return
        try:
            compaction.result()
        except Exception:
            _log.warning("compacting the log of virtual actor %r failed", self.actor_id, exc_info=True)

    def _refuse_if_applied_long_ago(self, head: CallRecord, call_id: str) -> None:
        """Raise when the head's ancestry shows the call was applied, though its record is compacted.

        A caller that retries a call id after many other commits (it crashed and restarted
        slowly) must not have it applied a second time; its result is gone, so it gets an error.
        """
        mark = call_mark(call_id)
        if mark in head.ancestry:
            seq = head.seq - 1 - head.ancestry.index(mark)
            raise WorkflowError(
                f"call {call_id!r} of virtual actor {self.actor_id!r} was applied at seq {seq}, but its "
                "record has been compacted away, so its result is gone; it is not applied again"
            )

    def _append(self, record: CallRecord) -> bool:
        """Commit ``record`` at its seq; False when another writer's call holds that seq.

        A transient storage error is retried. Before each retry the slot is read: a write whose
        answer was lost left this call's own record there, and that is a commit (re-applying
        the call would apply it twice: the fault suite's actor seed 1 counted 402 after 400).
        """
        for attempt in range(APPEND_ATTEMPTS):
            try:
                return self.store.append(record)
            except TransientStorageError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
            found = retry_transient(lambda: self.store.read(record.seq))
            if found is not None:
                return found.call_id == record.call_id
            time.sleep(min(1.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit_stands(self, record: CallRecord) -> bool:
        """Whether ``record``, written into a free slot after its base was compacted, is a real commit.

        Its base being gone means either the slot had been compacted before this write (the write is
        stale) or this writer stalled after committing while others went on and compacted (the call
        is committed: applying it again would apply it twice). The current head's ancestry tells
        which: it names the call at every seq below it, back ``ANCESTRY`` records. Further back,
        compaction has indexed the call if it was committed there (``calls/``).
        """
        self.forget_cache()
        _, head = self.sync()
        if head.seq == record.seq:
            return head.call_id == record.call_id
        distance = head.seq - 1 - record.seq
        if 0 <= distance < len(head.ancestry):
            return head.ancestry[distance] == call_mark(record.call_id)
        indexed = self.store.find_call(record.call_id)
        return indexed is not None and indexed.seq == record.seq

    def apply_readonly(
        self, target: Target, method: str, args: Any, kwargs: Any, context: Mapping[str, str] | None = None
    ) -> Any:
        """Run a read-only method on the latest committed state; changes are dropped with a warning."""
        with _observed_call(self.actor_id, method, True, context):
            return self._apply_readonly(target, method, args, kwargs)

    def _apply_readonly(self, target: Target, method: str, args: Any, kwargs: Any) -> Any:
        cls, head = self.sync()
        func = find_method(cls, self.actor_id, method)
        instance = restore(cls, _codec.loads(head.state))
        before = _codec.dumps(get_state(instance))
        token = current_call.set(RunningCall(target, instance, readonly=True))
        try:
            result = func(instance, *args, **kwargs)
        except Exception as error:
            raise ActorMethodError(self.actor_id, method, error) from error
        finally:
            current_call.reset(token)
        if _codec.dumps(get_state(instance)) != before:
            warnings.warn(
                f"read-only method {method!r} of virtual actor {self.actor_id!r} changed the actor's state; "
                "the change is not persisted (remove @virtual_actor.readonly to make it a mutating method)",
                RuntimeWarning,
                stacklevel=2,
            )
        return result


@contextlib.contextmanager
def _observed_call(
    actor_id: str, method: str, readonly: bool, context: Mapping[str, str] | None
) -> Iterator[None]:
    """Tell the plugins that a call is applied here, and how it ended."""
    context = context or {}
    hook().durably_actor_call_started(actor_id=actor_id, method=method, readonly=readonly, context=context)
    started = time.monotonic()
    error: BaseException | None = None
    try:
        yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        hook().durably_actor_call_finished(
            actor_id=actor_id,
            method=method,
            readonly=readonly,
            duration=time.monotonic() - started,
            error=error,
            context=context,
        )


_cores: dict[tuple[str, str], ActorCore] = {}
_cores_lock = threading.Lock()


def core_for(storage_url: str, actor_id: str) -> ActorCore:
    key = (storage_url, actor_id)
    core = _cores.get(key)
    if core is None:
        with _cores_lock:
            core = _cores.setdefault(key, ActorCore(storage_url, actor_id))
    return core


def drop_core(storage_url: str, actor_id: str) -> None:
    with _cores_lock:
        _cores.pop((storage_url, actor_id), None)
