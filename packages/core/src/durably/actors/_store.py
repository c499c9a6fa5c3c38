"""The virtual-actor key layout on top of a Storage; the only module that knows the actor keys.

```
actor-index/<actor_id>               one small marker per actor, written once it is constructed
                                     (JSON: class name); ``list_actors`` lists these
actors/<id>/class                    the actor's class, pickled by value, and its incarnation id
actors/<id>/creator/<n>              the lease of the process running the constructor (_lease.py)
actors/<id>/runtime_env              the actor's code snapshot, captured at its creation (plain JSON;
                                     ``_snapshots``): its Ray host runs under it
actors/<id>/log/<seq:012d>           one committed call: the state after it + its result + call id.
                                     seq 0 is the constructor; the highest seq is the current state
actors/<id>/calls/<call id hash>     a compacted retryable call (its id given by the caller or fixed in
                                     a step): its seq, call id and result (no state), written by
                                     compaction before it deletes the call's log record, so the call id
                                     retried any time later finds its result instead of re-applying
actor-deleting/<actor_id>            a deletion in progress (unlisted first, marker removed last)
```

A record is created with ``put_if_absent``, so two writers cannot both commit the same ``seq``.
Every record holds the whole state, so any record is a snapshot: compaction deletes, in
ascending order, every record more than ``KEEP`` below a record whose ``seq`` is a multiple of
``COMPACT_EVERY``. The records committed and left therefore always form one unbroken run ending
at the head, each naming the one below it first in its ancestry. A writer that stalled can still
create a record in a slot compaction emptied (a *stale* record, below that run); readers take
only the run (``CallRecord.rests_on``), and compaction indexes only calls the run vouches for.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from durably import _codec
from durably._codec import RecordKind
from durably._errors import CheckpointCorruptedError, WorkflowError
from durably._store import encode_plain_record, is_transient_write_error, read_plain_record
from durably.storage import KeyNotFound, Storage, create_once

#: Records kept below the latest compaction point (also how far back a retried call id is found).
KEEP = 16
#: A committer whose seq is a multiple of this deletes the records older than ``seq - KEEP``.
COMPACT_EVERY = 16

#: How many calls below it a record remembers: more than compaction can remove during one stall
#: of a writer that outlasts fewer than ``ANCESTRY - KEEP`` commits by others.
ANCESTRY = KEEP + 2 * COMPACT_EVERY

_SEQ_DIGITS = 12


def call_mark(call_id: str) -> str:
    """A short, fixed-size stand-in for a call id in a record's ancestry."""
    return hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()


def _call_key_name(call_id: str) -> str:
    """A storage-safe name for any call id (user call ids may hold any character)."""
    return hashlib.blake2b(call_id.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class CallRecord:
    """One committed call, as stored under ``log/<seq>``."""

    seq: int
    call_id: str
    method: str
    incarnation: str
    state: bytes
    result: bytes
    #: Short hashes (``call_mark``) of the call ids of the records below this one, nearest first,
    #: ``ANCESTRY`` of them (none in older records): the history compaction would otherwise erase,
    #: by which a stalled writer tells its commit from a write into a compacted slot.
    ancestry: tuple[str, ...] = ()
    #: Whether the call's id may be sent again (given by the caller, or fixed in a workflow step):
    #: then compaction keeps its id and result (``calls/``). A plain ``.run()``'s generated id is
    #: never sent again by anyone, so it is not kept, and the storage of a busy actor stays bounded.
    retryable: bool = True

    def rests_on(self, below: CallRecord) -> bool:
        """Whether ``below`` is the record this one was applied on (the one under it in the run).

        A record written before ancestry was kept names nothing, and is taken at its word.
        """
        if below.seq != self.seq - 1 or below.incarnation != self.incarnation:
            return False
        return not self.ancestry or self.ancestry[0] == call_mark(below.call_id)


class ActorStore:
    """Reads and writes one virtual actor's records."""

    def __init__(self, storage: Storage, actor_id: str) -> None:
        self.storage = storage
        self.actor_id = actor_id
        self.prefix = f"actors/{actor_id}"
        self.index_key = f"actor-index/{actor_id}"

    def key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def log_key(self, seq: int) -> str:
        return self.key("log", f"{seq:0{_SEQ_DIGITS}d}")

    def _create(self, key: str, data: bytes) -> bool:
        """Create a record once, retrying transient errors; after a lost answer its own record counts."""
        return create_once(self.storage, key, data, is_transient=is_transient_write_error)

    # -- class --------------------------------------------------------------------------------
    def create_class(self, class_name: str, incarnation: str, pickled_class: bytes) -> bool:
        """Store the class of a new actor; False when one is already stored (nothing replaced)."""
        meta = {"class_name": class_name, "incarnation": incarnation, "created_at": time.time()}
        record = _codec.encode_record(RecordKind.ACTOR_CLASS, meta, pickled_class)
        return self._create(self.key("class"), record)

    def load_class_record(self) -> tuple[dict[str, Any], bytes]:
        """(meta, pickled class); raises KeyNotFound when the actor has no class stored."""
        key = self.key("class")
        found_kind, meta, payload = _codec.decode_record(key, self.storage.get(key))
        if found_kind != RecordKind.ACTOR_CLASS:
            raise CheckpointCorruptedError(
                key, f"record kind {found_kind} where {RecordKind.ACTOR_CLASS} was expected"
            )
        return meta, bytes(payload)

    def save_runtime_env(self, record: dict[str, Any]) -> bool:
        """Record the code snapshot of a new actor, once; False when one is already recorded."""
        return self._create(self.key("runtime_env"), encode_plain_record(record))

    def load_runtime_env(self) -> dict[str, Any] | None:
        """The actor's code snapshot, None for an actor created without one."""
        return read_plain_record(self.storage, self.key("runtime_env"))

    def delete_class(self) -> None:
        self.storage.delete_prefix(self.key("class"))

    # -- index --------------------------------------------------------------------------------
    def mark_listed(self, class_name: str) -> None:
        self._create(self.index_key, json.dumps({"class_name": class_name}).encode())

    def is_listed(self) -> bool:
        return self.storage.exists(self.index_key)

    def load_marker(self) -> dict[str, Any] | None:
        """The index marker (JSON: class name), or None when the actor is not listed."""
        try:
            marker = json.loads(self.storage.get(self.index_key))
        except KeyNotFound:
            return None
        except ValueError as exc:
            raise WorkflowError(
                f"the index marker of actor {self.actor_id!r} is not valid JSON: {exc}"
            ) from exc
        return marker if isinstance(marker, dict) else {}

    # -- log ----------------------------------------------------------------------------------
    def append(self, record: CallRecord) -> bool:
        """Commit ``record`` at its seq; False when another writer committed that seq first.

        Transient errors propagate: ``_commit`` retries them, re-reading the slot and the head.
        """
        return self.storage.put_if_absent(self.log_key(record.seq), self._encode(record))

    def append_constructed(self, record: CallRecord) -> bool:
        """Commit the constructor's record (seq 0) as ``append`` does, retrying transient errors
        here and recognising the record after a lost answer."""
        return self._create(self.log_key(record.seq), self._encode(record))

    @staticmethod
    def _encode(record: CallRecord) -> bytes:
        meta = {
            "seq": record.seq,
            "call_id": record.call_id,
            "method": record.method,
            "incarnation": record.incarnation,
            "state_bytes": len(record.state),
            "ancestry": list(record.ancestry),
            "retryable": record.retryable,
            "committed_at": time.time(),
        }
        return _codec.encode_record(RecordKind.ACTOR_CALL, meta, record.state + record.result)

    def read(self, seq: int) -> CallRecord | None:
        """The record committed at ``seq``, or None when there is none (not yet, or compacted)."""
        return self._read(self.log_key(seq))

    def _read(self, key: str) -> CallRecord | None:
        try:
            data = self.storage.get(key)
        except KeyNotFound:
            return None
        found_kind, meta, payload = _codec.decode_record(key, data)
        if found_kind != RecordKind.ACTOR_CALL:
            raise CheckpointCorruptedError(
                key, f"record kind {found_kind} where {RecordKind.ACTOR_CALL} was expected"
            )
        split = int(meta["state_bytes"])
        return CallRecord(
            seq=int(meta["seq"]),
            call_id=str(meta["call_id"]),
            method=str(meta["method"]),
            incarnation=str(meta["incarnation"]),
            state=bytes(payload[:split]),
            result=bytes(payload[split:]),
            ancestry=tuple(str(mark) for mark in meta.get("ancestry", ())),
            retryable=bool(meta.get("retryable", True)),
        )

    def read_meta(self, seq: int) -> dict[str, Any] | None:
        """The plain data of the record at ``seq`` (method, commit time; nothing unpickled), or None."""
        key = self.log_key(seq)
        try:
            found_kind, meta, _ = _codec.decode_record(key, self.storage.get(key))
        except KeyNotFound:
            return None
        if found_kind != RecordKind.ACTOR_CALL:
            raise CheckpointCorruptedError(
                key, f"record kind {found_kind} where {RecordKind.ACTOR_CALL} was expected"
            )
        return meta

    def has(self, seq: int) -> bool:
        return self.storage.exists(self.log_key(seq))

    def forget(self, seq: int) -> None:
        """Delete one record (a write that turned out to be stale; see ``_commit``)."""
        self.storage.delete_prefix(self.log_key(seq))

    def stored_seqs(self) -> list[int]:
        """Every seq with a record, ascending (one listing: for recovery and compaction only)."""
        seqs = []
        for key in self.storage.list(self.key("log")):
            name = key.rsplit("/", 1)[1]
            if name.isdigit():
                seqs.append(int(name))
        return sorted(seqs)

    def compact(self, head: CallRecord) -> int:
        """Delete, oldest first, every record below ``head.seq - KEEP``; returns how many were deleted.

        Each retryable call the run below ``head`` vouches for (its ancestry names it) is indexed
        first (``find_call``), so its call id is recognised after its record is gone. A stale
        record is deleted without being indexed.
        """
        cutoff = head.seq - KEEP
        below = [seq for seq in self.stored_seqs() if seq < cutoff]
        marks = {head.seq - 1 - distance: mark for distance, mark in enumerate(head.ancestry)}
        vouched: dict[int, CallRecord] = {}
        for seq in reversed(below):  # nearest first: a vouched record vouches for those below it
            record = self.read(seq)
            if record is None or record.incarnation != head.incarnation:
                continue
            if marks.get(seq) == call_mark(record.call_id):
                vouched[seq] = record
                for distance, mark in enumerate(record.ancestry):
                    marks.setdefault(seq - 1 - distance, mark)
        for seq in below:
            if seq in vouched and vouched[seq].retryable:
                self.index_call(vouched[seq])
            self.forget(seq)
        return len(below)

    def index_call(self, record: CallRecord) -> None:
        """Keep a committed call's seq, id and result under ``calls/`` (once; a retry finds it there)."""
        meta = {
            "seq": record.seq,
            "call_id": record.call_id,
            "method": record.method,
            "incarnation": record.incarnation,
            "state_bytes": 0,
            "committed_at": time.time(),
        }
        data = _codec.encode_record(RecordKind.ACTOR_CALL, meta, record.result)
        self._create(self.call_key(record.call_id), data)

    def find_call(self, call_id: str) -> CallRecord | None:
        """The compacted call with this id (its ``state`` empty), or None when none was compacted."""
        record = self._read(self.call_key(call_id))
        return record if record is not None and record.call_id == call_id else None

    def call_key(self, call_id: str) -> str:
        return self.key("calls", _call_key_name(call_id))

    # -- everything ---------------------------------------------------------------------------
    def keys(self) -> Iterator[str]:
        yield from self.storage.list(self.prefix)

    def begin_delete(self) -> None:
        """Mark the deletion, then unlist the actor (it no longer exists for any reader)."""
        self.storage.put(f"actor-deleting/{self.actor_id}", b"")
        self.storage.delete_prefix(self.index_key)

    def finish_delete(self) -> None:
        """Remove every remaining record of an actor whose deletion began; the marker goes last."""
        self.storage.delete_prefix(self.prefix)
        self.storage.delete_prefix(f"actor-deleting/{self.actor_id}")

    def delete(self) -> None:
        """Remove the actor: first from the index (so it is no longer listed), then every record.

        A deleter stopped half-way leaves a marker that the garbage collector finishes.
        """
        self.begin_delete()
        self.finish_delete()


def list_actor_ids(storage: Storage) -> list[str]:
    """Every constructed actor's id, sorted (one listing, no reads)."""
    return [key[len("actor-index/") :] for key in storage.list("actor-index")]


def list_deleting_actor_ids(storage: Storage) -> list[str]:
    """Ids of actors whose deletion began and has not finished."""
    return [key[len("actor-deleting/") :] for key in storage.list("actor-deleting")]


def list_actor_entries(storage: Storage) -> list[tuple[str, str]]:
    """(actor id, class name) of every constructed actor in the storage, sorted by id."""
    found = []
    for key in storage.list("actor-index"):
        actor_id = key[len("actor-index/") :]
        try:
            marker = json.loads(storage.get(key))
        except KeyNotFound:
            continue  # deleted while we listed
        except ValueError as exc:
            raise WorkflowError(f"the index marker of actor {actor_id!r} is not valid JSON: {exc}") from exc
        found.append((actor_id, str(marker.get("class_name", "?"))))
    return found
