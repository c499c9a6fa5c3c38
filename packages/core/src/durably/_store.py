"""The workflow key layout on top of a Storage; the only module that knows the keys.

Every workflow key is built here (``WorkflowStore.key``, ``object_key``, ``lease_key``); every
value is a record of ``_codec`` whose kind is a ``RecordKind``. Other modules open a workflow's
store with ``open_workflow_store(url, id)``.

```
index/<workflow_id>                         one small marker per workflow (cheap list_all)
statusindex/by/<STATUS>/<workflow_id>       a hint: this workflow may have this recorded status (empty;
                                            ``_status_index``: listing one status reads one prefix)
statusindex/built                           every workflow of this storage is hinted (written by a
                                            rebuild, or by the first create in an empty storage)
workflows/<id>/meta                         user metadata, creation time, step count, retention (created
                                            once; plain JSON)
workflows/<id>/graph                        the step table of the top-level graph (meta: its outline)
workflows/<id>/functions/<hash>             each distinct step function, pickled once
workflows/<id>/objects/<hash>               the value of a Ray ObjectRef, stored once by content
workflows/<id>/statuses/<epoch>             status, times, the error of a failed run as text (plain JSON),
                                            under the writer's lease epoch: the newest epoch's counts
workflows/<id>/status                       the status record of versions before epochs (still read)
workflows/<id>/failure                      the exception of a failed run, pickled (get_output/resume only)
workflows/<id>/steps/<step_id>              a finished step: output + its metadata (framed when
                                            the output has out-of-band buffers: meta "buffers")
workflows/<id>/continuations/<step_id>      a step that returned a sub-graph: that graph (meta: its outline)
workflows/<id>/names/<name>                 which step a dynamically created named step is
workflows/<id>/attempts/<step_id>           how many attempts of a step raised in a worker that may crash, and
                                            the execution (Ray task id) they belong to (plain JSON; a retry
                                            after the crash counts them against max_retries: ``_runner``)
workflows/<id>/result                       which step's output is the workflow's output
workflows/<id>/tail                         a recent step on the output's continuation chain
workflows/<id>/lease/<n>                    who drives the workflow now (lease_key; _lease.py numbers them)
workflows/<id>/cancel                       a cancellation request
workflows/<id>/events/<step_id>             an event a wait_for_event step received, before acknowledging it
workflows/<id>/mailbox/<key>/<n>            the n-th external event sent under a key (key hashed)
workflows/<id>/claims/<key>/<n>             which wait_for_event step received that event
workflows/<id>/receivers/<step_id>          the event a waiting step is taking, so a crash cannot lose it
workflows/<id>/runtime_env                  the workflow's code snapshot: Ray runtime_env as recorded at
                                            its first run (or last upgrade), folders as package hashes
                                            (plain JSON; ``_snapshots``)
code/<sha256>.zip                           a zipped code folder, by content hash, shared by every workflow
                                            whose snapshot names it (written once; kept on delete)
deleting/<workflow_id>                      a deletion in progress; whoever finds it finishes it
```

Deleting a workflow writes ``deleting/<id>``, then removes ``meta`` (from then on the workflow
does not exist for any reader), then everything else, its status hints, the index entry and the
marker last: a deletion cut short leaves an invisible remainder that the next gc finishes, never
half a workflow that looks valid.

The status hints are a superset of the truth: the hint of a workflow's recorded status (the
newest epoch's ``statuses`` record; RUNNING while it has none) exists whenever the workflow does,
because every writer puts the hint *before* the record it describes (``create`` before ``meta``,
``save_status`` before ``statuses/<epoch>``) and checks it is still there after. Extra hints (a
writer stopped between its hint and its record, a status since left) are allowed: readers verify
every hint against the authoritative record and remove a stale one by ``drop_status_hint``, which
deletes, reads the record again and puts the hint back if a racing writer has just recorded that
status. The one way a hint can go missing is a process killed between that delete and its re-read
while another writer records that very status; ``durably index rebuild`` and ``durably gc``
restore it. See ``_status_index`` for the readers.

The JSON meta of records is what management (``durably.inspect``, the CLI, the UI) reads; it never
unpickles a payload. A graph's outline is ``[[step_id, name, [dependency ids]], ...]``.

``meta`` and ``statuses`` are management records: plain JSON written by ``encode_plain_record``,
so listing and inspecting workflows never unpickles user objects (records written before this
were framed ``_codec`` records; ``decode_plain_record`` still reads them).
"""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
import secrets
import time
import traceback
from collections.abc import Iterator
from typing import Any

from durably import _codec
from durably._codec import RecordKind
from durably._datasets import DATASET_ID, arrow_block_refs, is_dataset, rebuild
from durably._errors import (
    CheckpointCorruptedError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
)
from durably._graph import Graph
from durably._objects import OBJECT_ID, decode_object, is_object_ref, save_object_ref
from durably._resolve import open_storage
from durably._status import WorkflowStatus
from durably.codecs import CodecStorage
from durably.storage import KeyNotFound, Storage, TransientStorageError, create_once, retry_transient

#: errno values of a write that may pass when tried again (a full or flaky disk, an interrupted call).
_TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.EAGAIN, errno.EINTR, errno.EDQUOT})


def is_transient_write_error(error: BaseException) -> bool:
    """Whether a failed checkpoint write is worth trying again (a lasting failure is raised at once)."""
    if isinstance(error, TransientStorageError):
        return True
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


def encode_plain_record(fields: dict[str, Any]) -> bytes:
    """The bytes of a management record (``meta``, ``status``): one JSON object, nothing pickled."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True, default=str).encode()


def read_plain_record(storage: Storage, key: str) -> dict[str, Any] | None:
    """The fields of the management record at ``key``, or None when there is none."""
    try:
        return decode_plain_record(key, storage.get(key))
    except KeyNotFound:
        return None


def decode_plain_record(key: str, data: bytes) -> dict[str, Any]:
    """The fields of a management record; a framed record of an older version still reads."""
    if data[: len(_codec.MAGIC)] == _codec.MAGIC:
        return _codec.decode_record(key, data)[1]  # its pickled payload, if any, is not loaded
    try:
        fields = json.loads(data)
    except ValueError as exc:
        raise CheckpointCorruptedError(key, f"it is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise CheckpointCorruptedError(key, f"a JSON {type(fields).__name__} where an object was expected")
    return fields


def loadable_error(workflow_id: str, step_id: str, error: BaseException) -> BaseException:
    """``error``, or a ``WorkflowExecutionError`` with its text when it would not load back once stored.

    A caught exception becomes part of a step's output; one whose class cannot be rebuilt (extra
    ``__init__`` arguments, say) would make that checkpoint unloadable, so it is found out here,
    when it is written, and never on resume.
    """
    try:
        _codec.loads(_codec.dumps(error))
    except Exception:
        return WorkflowExecutionError(workflow_id, step_id, f"{type(error).__name__}: {error}")
    return error


#: Attributes the worker sets on a step's failed exception: its traceback text, attempt count,
#: and (start, end) unix times of its attempts.
DURABLY_TRACEBACK = "__durably_traceback__"
DURABLY_ATTEMPTS = "__durably_attempts__"
DURABLY_STEP_TIMES = "__durably_step_times__"


class StoredOutput:
    """Stands for a finished step's output that the consumer loads from storage itself."""

    __slots__ = ("step_id",)

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id

    def __reduce__(self) -> tuple[type[StoredOutput], tuple[str]]:
        return (StoredOutput, (self.step_id,))

    def __repr__(self) -> str:
        return f"StoredOutput({self.step_id!r})"


class WorkflowStore:
    """Reads and writes one workflow's records."""

    def __init__(self, storage: Storage, workflow_id: str) -> None:
        self.storage = storage
        self.workflow_id = workflow_id
        self.prefix = f"workflows/{workflow_id}"

    # -- keys ---------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def object_key(self, content_hash: str) -> str:
        """Where the value of a Ray ObjectRef with this content hash is kept (see ``_objects``)."""
        return self.key("objects", content_hash)

    @property
    def lease_key(self) -> str:
        """The prefix under which ``_lease.Lease`` keeps who drives the workflow now."""
        return self.key("lease")

    # -- record helpers -----------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> None:
        """Write a checkpoint, retrying transient storage errors (bounded, with backoff)."""
        retry_transient(
            lambda: self.storage.put(key, data),
            is_transient=is_transient_write_error,
            what=f"write of {key!r}",
        )

    def _create(self, key: str, data: bytes) -> bool:
        """Create a record once, retrying transient errors; False when another call created it.

        A retried create whose first answer was lost recognises its own record (``create_once``).
        """
        return create_once(self.storage, key, data, is_transient=is_transient_write_error)

    def _read(self, key: str, kind: int | None = None) -> tuple[dict[str, Any], memoryview]:
        data = self.storage.get(key)
        found_kind, meta, payload = _codec.decode_record(key, data)
        if kind is not None and found_kind != kind:
            raise CheckpointCorruptedError(key, f"record kind {found_kind} where {kind} was expected")
        return meta, payload

    def put_record_parts(
        self, key: str, kind: int, meta: dict[str, Any], parts: list[bytes | memoryview]
    ) -> None:
        """Write a record whose payload comes in pieces (large buffers as views of the value).

        The pieces are joined once: by the first codec as it encodes them, or into the record.
        Transient errors are retried as in ``_put``.
        """
        pieces = _codec.record_parts(kind, meta, parts)
        storage = self.storage
        if isinstance(storage, CodecStorage):
            retry_transient(
                lambda: storage.put_parts(key, pieces),
                is_transient=is_transient_write_error,
                what=f"write of {key!r}",
            )
        else:
            self._put(key, b"".join(pieces))

    def create_record_parts(
        self, key: str, kind: int, meta: dict[str, Any], parts: list[bytes | memoryview]
    ) -> bool:
        """``put_record_parts`` that creates the record once, as ``_create``; False when it existed."""
        pieces = _codec.record_parts(kind, meta, parts)
        storage = self.storage
        if isinstance(storage, CodecStorage):
            return retry_transient(
                lambda: storage.put_parts_if_absent(key, pieces), is_transient=is_transient_write_error
            )
        return self._create(key, b"".join(pieces))

    def _read_value(self, key: str, kind: int, resolve: Any = None) -> tuple[dict[str, Any], Any]:
        meta, payload = self._read(key, kind)
        return meta, self._unpickle(key, payload, resolve)

    @staticmethod
    def _unpickle(key: str, payload: memoryview, resolve: Any = None, buffers: Any = None) -> Any:
        try:
            if resolve is None:
                return _codec.loads(payload)
            return _codec.loads_with(payload, resolve, buffers)
        except (ImportError, AttributeError) as exc:
            # The checksum matched, so the bytes are intact: the code they refer to is missing here.
            raise WorkflowError(
                f"cannot load {key!r} in this process: {type(exc).__name__}: {exc}. Make the code it needs "
                "importable on every Ray worker (install the package, or use a runtime_env)."
            ) from exc
        except (pickle.UnpicklingError, EOFError, IndexError, KeyError, ValueError) as exc:
            # Errors of the pickle format itself: bytes that passed the checksum but are not a pickle.
            raise CheckpointCorruptedError(key, f"cannot unpickle it: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            # Intact bytes whose objects fail to rebuild here (a class whose __setstate__ or
            # __getattr__ raises, say): a problem of the code, which the user can fix; the
            # checkpoint itself is good and must not be reported as damaged.
            raise WorkflowError(
                f"cannot load {key!r} in this process: rebuilding an object in it raised "
                f"{type(exc).__name__}: {exc}. Fix the class of that object (its pickling methods)."
            ) from exc

    # -- creation -----------------------------------------------------------------------------
    def create(self, graph: Graph, metadata: dict[str, Any], retention: float | None = None) -> bool:
        """Store a new workflow; False when a graph is already stored under this id (nothing replaced).

        ``retention`` is how many seconds the workflow is kept once it finished (None: forever).
        """
        self.save_functions(graph.functions)
        self.save_argument_objects(graph)
        payload = _codec.dumps(Graph(graph.steps, graph.output))
        graph_record = _codec.encode_record(RecordKind.GRAPH, {"outline": graph_outline(graph)}, payload)
        created = self._create(self.key("graph"), graph_record)
        new = not self.exists()
        if new:  # the hint first: a workflow that exists is always hinted (RUNNING: no record yet)
            mark_new_storage_indexed(self.storage)
            self.put_status_hint(_RECORDLESS_STATUS)
        meta = {
            "user_metadata": metadata,
            "created_at": time.time(),
            "output": graph.output,
            "step_count": len(graph.steps),
            "retention": retention,
        }
        self._create(self.key("meta"), encode_plain_record(meta))
        if new:
            self.ensure_status_hint(_RECORDLESS_STATUS)
        self._create(f"index/{self.workflow_id}", b"")
        return created

    def exists(self) -> bool:
        return self.storage.exists(self.key("meta"))

    def load_meta(self) -> dict[str, Any]:
        key = self.key("meta")
        try:
            return decode_plain_record(key, self.storage.get(key))
        except KeyNotFound:
            raise WorkflowNotFoundError(self.workflow_id) from None

    def load_graph(self) -> Graph:
        try:
            _, graph = self._read_value(self.key("graph"), RecordKind.GRAPH)
        except KeyNotFound:
            raise WorkflowNotFoundError(self.workflow_id) from None
        return graph  # type: ignore[no-any-return]

    def load_graph_outline(self) -> list[Any] | None:
        """The top-level graph's outline (plain data), or None for a graph stored without one."""
        try:
            meta, _ = self._read(self.key("graph"), RecordKind.GRAPH)
        except KeyNotFound:
            raise WorkflowNotFoundError(self.workflow_id) from None
        return meta.get("outline")

    def save_functions(self, functions: dict[str, bytes]) -> None:
        for func_key, data in functions.items():
            key = self.key("functions", func_key)
            # Every continuation of a recursive step lists the same functions again: a lookup is
            # far cheaper than a durable write (temp file, fsync) that would find them stored.
            if not self.storage.exists(key):
                self._create(key, _codec.encode_record(RecordKind.FUNCTION, {}, data))

    def load_function(self, func_key: str) -> Any:
        _, func = self._read_value(self.key("functions", func_key), RecordKind.FUNCTION)
        return func

    # -- status -------------------------------------------------------------------------------
    def save_status(self, status: str, *, epoch: int, **details: Any) -> None:
        """Record the workflow's status under the lease epoch of its writer; the newest epoch's is read.

        A driver that lost its lease writes under its old epoch, so it cannot hide the status of
        the driver that took over. A failure is stored as text, its exception (pickled) beside it.
        """
        status = str(status)
        previous = self.recorded_status()
        if previous != status:  # before the record: whoever reads the record finds its hint
            self.put_status_hint(status)
        error = details.pop("error", None)
        fields = {"status": status, "updated_at": time.time(), "epoch": epoch, **details}
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
            fields.update(error_text(error))
            try:
                payload = _codec.dumps(error)
            except Exception:
                payload = _codec.dumps(RuntimeError(fields["error"]))
            self._put(self.key("failure"), _codec.encode_record(RecordKind.FAILURE, {}, payload))
        self._put(self.key("statuses", f"{epoch:010d}"), encode_plain_record(fields))
        for older in self._listed_ids("statuses"):
            if older < f"{epoch:010d}":
                self.storage.delete_prefix(self.key("statuses", older))
        if previous is not None and previous != status:
            self.drop_status_hint(previous)
        self.ensure_status_hint(status)

    # -- status hints (``_status_index``) ------------------------------------------------------
    def recorded_status(self) -> str | None:
        """The status the records say (RUNNING while there is no status record); None: no workflow.

        Not the status a reader believes (a RUNNING one whose driver died is RESUMABLE): hints
        are kept by recorded status, which changes only when a record is written.
        """
        record = self.load_status_meta()
        if record is not None:
            return str(record.get("status", _RECORDLESS_STATUS))
        return _RECORDLESS_STATUS if self.exists() else None

    def put_status_hint(self, status: str) -> None:
        """Say that this workflow may have ``status`` (before the record saying so is written)."""
        self._put(status_hint_key(status, self.workflow_id), b"")

    def ensure_status_hint(self, status: str) -> None:
        """Put the hint again if a racing ``drop_status_hint`` removed it (a read when it is there)."""
        if not self.storage.exists(status_hint_key(status, self.workflow_id)):
            self.put_status_hint(status)

    def drop_status_hint(self, status: str) -> bool:
        """Remove a hint found stale; put it back if the workflow has that status by now (False).

        The re-read after the delete is what makes removal safe against a writer that put this
        hint and then recorded the status while we looked (its own check may have run before our
        delete).
        """
        self.storage.delete_prefix(status_hint_key(status, self.workflow_id))
        if self.recorded_status() == status:
            self.put_status_hint(status)
            return False
        return True

    def load_status_meta(self) -> dict[str, Any] | None:
        """The newest epoch's status record as plain data, or None when there is none; never unpickles."""
        epochs = list(self._listed_ids("statuses"))
        key = self.key("statuses", epochs[-1]) if epochs else self.key("status")  # "status": before epochs
        try:
            return decode_plain_record(key, self.storage.get(key))
        except KeyNotFound:
            if epochs:  # deleted by a newer writer while we listed
                return self.load_status_meta()
            return None

    def load_failure(self) -> BaseException | None:
        """The exception of the failed run (unpickled: only get_output/resume ask), or None if none is stored.

        Raises when it cannot be loaded in this process; the status record has its text.
        """
        try:
            _, payload = self._read(self.key("failure"), RecordKind.FAILURE)
        except KeyNotFound:
            try:  # a status record of an older version held the exception as its payload
                _, payload = self._read(self.key("status"), RecordKind.STATUS)
            except (KeyNotFound, CheckpointCorruptedError):
                return None
        if not len(payload):
            return None
        error = self._unpickle(self.key("failure"), payload)
        return error if isinstance(error, BaseException) else None

    # -- steps --------------------------------------------------------------------------------
    def _store_object_refs(self, obj: Any) -> Any:
        if is_object_ref(obj):
            return (OBJECT_ID, save_object_ref(self, obj))
        if is_dataset(obj):
            # Its blocks die with this cluster: store them by value (``_datasets``).
            return (DATASET_ID, [save_object_ref(self, ref) for ref in arrow_block_refs(obj)])
        return None

    def _restore_object_refs(self, persistent_id: Any) -> Any:
        kind, content = persistent_id
        if kind == DATASET_ID:
            return rebuild(
                [restore_object_ref(self.storage.url, self.workflow_id, digest) for digest in content]
            )
        if kind != OBJECT_ID:
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        return restore_object_ref(self.storage.url, self.workflow_id, content)

    def load_object(self, content_hash: str) -> Any:
        """The value of a Ray ObjectRef stored under its content hash."""
        key = self.object_key(content_hash)
        _, _, payload = _codec.decode_record(key, self.storage.get(key))
        return decode_object(payload)

    def save_step_output(self, step_id: str, value: Any, meta: dict[str, Any]) -> bool:
        """Record a finished step's output once; False when one was already recorded (it stays)."""
        # Out-of-band buffers (numpy arrays...) go into the record as views: copied once, by the join.
        parts, buffers = _codec.dumps_framed(value, self._store_object_refs)
        if buffers:
            meta = {**meta, "buffers": buffers}
        return self.create_record_parts(self.key("steps", step_id), RecordKind.STEP, meta, parts)

    def has_step_output(self, step_id: str) -> bool:
        return self.storage.exists(self.key("steps", step_id))

    def has_continuation(self, step_id: str) -> bool:
        return self.storage.exists(self.key("continuations", step_id))

    def load_step_output(self, step_id: str) -> Any:
        key = self.key("steps", step_id)
        meta, payload = self._read(key, RecordKind.STEP)
        buffers = None
        if meta.get("buffers"):
            payload, buffers = _codec.unframe(payload)
        return self._unpickle(key, payload, self._restore_object_refs, buffers)

    def load_recorded_output(self, step_id: str, recorded_by: str) -> Any:
        """The output of a step that another record (``recorded_by``) says was stored.

        Its absence is damage (a lost write), so it is a ``CheckpointCorruptedError`` naming the
        missing key, never a ``KeyNotFound`` that reads like "not finished yet".
        """
        try:
            return self.load_step_output(step_id)
        except KeyNotFound:
            key = self.key("steps", step_id)
            raise CheckpointCorruptedError(
                key, f"the workflow's {recorded_by} record says it was stored, but it is missing"
            ) from None

    def save_argument_objects(self, graph: Graph) -> None:
        """Store the values of ObjectRef arguments, so the stored graph names them by content hash."""
        for spec in graph.steps:
            if spec.object_refs:
                spec.object_hashes = [save_object_ref(self, ref) for ref in spec.object_refs]
                spec.object_refs = []

    def restore_argument_object(self, spec: Any, index: int) -> Any:
        return restore_object_ref(self.storage.url, self.workflow_id, spec.object_hashes[index])

    def load_step_meta(self, step_id: str) -> dict[str, Any]:
        for folder, kind in (("steps", RecordKind.STEP), ("continuations", RecordKind.CONTINUATION)):
            try:
                return self._read(self.key(folder, step_id), kind)[0]
            except KeyNotFound:
                continue
        raise KeyNotFound(self.key("steps", step_id))

    def save_continuation(self, step_id: str, graph: Graph, meta: dict[str, Any]) -> bool:
        """Record the sub-graph a step returned, once; False when one was already recorded (it stays)."""
        self.save_functions(graph.functions)
        self.save_argument_objects(graph)
        payload = _codec.dumps(Graph(graph.steps, graph.output))
        meta = {**meta, "outline": graph_outline(graph)}
        return self._create(
            self.key("continuations", step_id), _codec.encode_record(RecordKind.CONTINUATION, meta, payload)
        )

    def load_continuation(self, step_id: str) -> Graph:
        return self._read_value(self.key("continuations", step_id), RecordKind.CONTINUATION)[1]  # type: ignore[no-any-return]

    def _listed_ids(self, folder: str) -> Iterator[str]:
        start = len(self.key(folder)) + 1
        for key in self.storage.list(self.key(folder)):
            yield key[start:]

    def finished_steps(self) -> tuple[set[str], set[str]]:
        """Ids of steps with a stored output, and of steps with a stored continuation (two listings)."""
        return set(self._listed_ids("steps")), set(self._listed_ids("continuations"))

    def save_raised_attempts(self, step_id: str, execution: str, raised: int) -> None:
        """Record that ``raised`` attempts of the step's ``execution`` raised (and were retried)."""
        record = {"execution": execution, "raised": raised}
        self._put(self.key("attempts", step_id), encode_plain_record(record))

    def raised_attempts(self, step_id: str, execution: str) -> int:
        """How many attempts of the step's ``execution`` raised; 0 when none are recorded for it."""
        record = read_plain_record(self.storage, self.key("attempts", step_id))
        if record is None or record.get("execution") != execution:
            return 0  # none raised, or an earlier run's (a resume starts a fresh budget)
        return int(record["raised"])

    def save_step_name(self, name: str, step_id: str) -> None:
        self._put(self.key("names", name), _codec.encode_record(RecordKind.POINTER, {"step_id": step_id}))

    def step_id_for_name(self, name: str) -> str | None:
        try:
            return str(self._read(self.key("names", name), RecordKind.POINTER)[0]["step_id"])
        except KeyNotFound:
            return None

    # -- result -------------------------------------------------------------------------------
    def save_result_pointer(self, step_id: str) -> bool:
        """Record which step holds the workflow's output, once; False when a result was already recorded.

        The workflow's records are made durable first (the result must never survive a power
        cut without the step it points at) and after (a caller told the output keeps it).
        """
        self.make_durable()
        record = _codec.encode_record(RecordKind.POINTER, {"step_id": step_id})
        created = self._create(self.key("result"), record)
        self.make_durable(self.key("result"))  # only the pointer is new since the first
        return created

    def make_durable(self, prefix: str | None = None) -> None:
        """Wait until every record of this workflow (or those at or under ``prefix``) survives a power cut.

        Only backends that acknowledge a write before it is durable have ``sync`` (``file://``,
        which syncs folders in the background); on the others a written key already is.
        """
        sync = getattr(self.storage, "sync", None)
        if sync is not None:
            below = self.prefix if prefix is None else prefix
            retry_transient(lambda: sync(below), is_transient=is_transient_write_error)

    def result_step_id(self) -> str | None:
        try:
            return str(self._read(self.key("result"), RecordKind.POINTER)[0]["step_id"])
        except KeyNotFound:
            return None

    # -- the output's forwarding chain ---------------------------------------------------------
    def save_tail(self, parent_step_id: str, step_id: str) -> None:
        """Remember a step on the output's continuation chain (and the step whose graph holds it)."""
        meta = {"parent": parent_step_id, "step_id": step_id}
        self._put(self.key("tail"), _codec.encode_record(RecordKind.POINTER, meta))

    def load_tail(self) -> tuple[str, str] | None:
        try:
            meta = self._read(self.key("tail"), RecordKind.POINTER)[0]
        except KeyNotFound:
            return None
        return str(meta["parent"]), str(meta["step_id"])

    # -- code snapshot -------------------------------------------------------------------------
    def save_runtime_env(self, record: dict[str, Any], *, replace: bool = False) -> bool:
        """Record the workflow's code snapshot once (``replace``: an upgrade asked for); False if kept."""
        key = self.key("runtime_env")
        if replace:
            self._put(key, encode_plain_record(record))
            return True
        return self._create(key, encode_plain_record(record))

    def load_runtime_env(self) -> dict[str, Any] | None:
        """The recorded code snapshot, None for a workflow that runs without one."""
        return read_plain_record(self.storage, self.key("runtime_env"))

    # -- cancellation ------------------------------------------------------------------------
    def request_cancel(self) -> None:
        self.storage.put(self.key("cancel"), b"")

    def cancel_requested(self) -> bool:
        return self.storage.exists(self.key("cancel"))

    def clear_cancel(self) -> None:
        self.storage.delete_prefix(self.key("cancel"))

    # -- events -------------------------------------------------------------------------------
    def save_pending_event(self, step_id: str, event: Any) -> None:
        record = _codec.encode_record(RecordKind.EVENT, {}, _codec.dumps(event))
        self._put(self.key("events", step_id), record)

    def load_pending_event(self, step_id: str) -> tuple[bool, Any]:
        """(True, event) if the step received an event that may be unacknowledged, else (False, None)."""
        try:
            return True, self._read_value(self.key("events", step_id), RecordKind.EVENT)[1]
        except KeyNotFound:
            return False, None

    @staticmethod
    def _mailbox(key: str) -> str:
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def message_numbers(self, key: str) -> list[int]:
        """Numbers of the external events sent under ``key``, oldest first."""
        return sorted(int(name) for name in self._listed_ids(f"mailbox/{self._mailbox(key)}"))

    def claimed_numbers(self, key: str) -> set[int]:
        return {int(name) for name in self._listed_ids(f"claims/{self._mailbox(key)}")}

    def add_message(self, key: str, payload: Any) -> int:
        """Append an external event under ``key``; returns its number (distinct for concurrent senders)."""
        # The token makes this message's record its own: after a lost answer the sender finds it
        # instead of storing the message a second time under the next number.
        meta = {"key": key, "sent_at": time.time(), "token": secrets.token_hex(16)}
        record = _codec.encode_record(RecordKind.MESSAGE, meta, _codec.dumps(payload))
        numbers = self.message_numbers(key)
        number = numbers[-1] + 1 if numbers else 0
        mailbox = self._mailbox(key)
        while not self._create(self.key("mailbox", mailbox, f"{number:012d}"), record):
            number += 1
        return number

    def load_message(self, key: str, number: int) -> Any:
        return self._read_value(
            self.key("mailbox", self._mailbox(key), f"{number:012d}"), RecordKind.MESSAGE
        )[1]

    def claim_message(self, key: str, number: int, step_id: str) -> bool:
        """Make ``step_id`` the one receiver of a message; True if it is (now, or from before a crash)."""
        claim = self.key("claims", self._mailbox(key), f"{number:012d}")
        if self._create(claim, _codec.encode_record(RecordKind.POINTER, {"step_id": step_id})):
            return True
        return bool(self._read(claim, RecordKind.POINTER)[0]["step_id"] == step_id)

    def save_receiving(self, step_id: str, key: str, number: int) -> None:
        record = _codec.encode_record(RecordKind.POINTER, {"key": key, "number": number})
        self._put(self.key("receivers", step_id), record)

    def load_receiving(self, step_id: str, key: str) -> int | None:
        """The message number the step was taking under ``key`` when it last ran, if any."""
        try:
            meta = self._read(self.key("receivers", step_id), RecordKind.POINTER)[0]
        except KeyNotFound:
            return None
        return int(meta["number"]) if meta.get("key") == key else None

    # -- deletion -----------------------------------------------------------------------------
    def begin_delete(self) -> None:
        """Mark the deletion, then make the workflow invisible (its meta goes first)."""
        self.storage.put(f"deleting/{self.workflow_id}", b"")
        self.storage.delete_prefix(self.key("meta"))

    def finish_delete(self) -> None:
        """Remove every remaining record of a workflow whose deletion began; the marker goes last."""
        self.storage.delete_prefix(self.prefix)
        for status in HINTED_STATUSES:
            self.storage.delete_prefix(status_hint_key(status, self.workflow_id))
        self.storage.delete_prefix(f"index/{self.workflow_id}")
        self.storage.delete_prefix(f"deleting/{self.workflow_id}")

    def forget_deletion(self) -> None:
        """Drop the marker of a deletion that was decided against (the workflow stays)."""
        self.storage.delete_prefix(f"deleting/{self.workflow_id}")

    def delete(self) -> None:
        self.begin_delete()
        self.finish_delete()


def graph_outline(graph: Graph) -> list[Any]:
    """The plain-data shape of a graph, ``[[step_id, name, [dependency ids]], ...]``, in its order."""
    return [[spec.step_id, spec.name, list(spec.dependencies)] for spec in graph.steps]


def error_text(error: BaseException) -> dict[str, Any]:
    """A failure as plain text: the step's own error (the cause a workflow error wraps), with its traceback.

    The traceback text recorded where the step ran (see ``_runner.remember_failure``) is preferred:
    an exception that crossed process boundaries has lost its own.
    """
    cause = error.__cause__ if error.__cause__ is not None else error
    text = getattr(cause, DURABLY_TRACEBACK, None)
    if not isinstance(text, str):
        text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    found: dict[str, Any] = {
        "error_type": type(cause).__name__,
        "error_message": str(cause),
        "traceback": text,
    }
    attempts = getattr(cause, DURABLY_ATTEMPTS, None)
    if isinstance(attempts, int):
        found["failed_attempts"] = attempts
    times = getattr(cause, DURABLY_STEP_TIMES, None)
    if isinstance(times, tuple) and len(times) == 2:
        found["failed_step_start"], found["failed_step_end"] = times
    return found


def code_package_key(digest: str) -> str:
    """Where the zipped code folder whose sha256 is ``digest`` is kept (shared by workflows)."""
    return f"code/{digest}.zip"


def save_code_package(storage: Storage, digest: str, data: bytes) -> None:
    """Store a zipped code folder under its content hash, once (an identical folder is stored once)."""
    key = code_package_key(digest)
    if not storage.exists(key):
        record = _codec.encode_record(RecordKind.CODE, {"sha256": digest, "size": len(data)}, data)
        retry_transient(lambda: storage.put_if_absent(key, record), is_transient=is_transient_write_error)


def load_code_package(storage: Storage, digest: str) -> bytes:
    """The zip stored by ``save_code_package``; refuses one whose content does not match its hash."""
    key = code_package_key(digest)
    found_kind, _, payload = _codec.decode_record(key, storage.get(key))
    if found_kind != RecordKind.CODE:
        raise CheckpointCorruptedError(key, f"record kind {found_kind} where {RecordKind.CODE} was expected")
    data = bytes(payload)
    if hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointCorruptedError(key, "its content does not match the hash it is stored under")
    return data


def list_workflow_ids(storage: Storage) -> list[str]:
    """Every workflow id in the storage, sorted."""
    return [key[len("index/") :] for key in storage.list("index")]


def open_workflow_store(storage_url: str, workflow_id: str) -> WorkflowStore:
    """The store of one workflow in the storage at ``storage_url`` (opened once per process)."""
    return WorkflowStore(open_storage(storage_url), workflow_id)


def load_object(storage_url: str, workflow_id: str, content_hash: str) -> Any:
    """The value stored under a content hash (runs in a Ray worker for lazy restores)."""
    return open_workflow_store(storage_url, workflow_id).load_object(content_hash)


_restore_task: Any = None


def restore_object_ref(storage_url: str, workflow_id: str, content_hash: str) -> Any:
    """An ObjectRef whose value is read from storage by a Ray task; the value itself without Ray."""
    global _restore_task
    import ray

    if not ray.is_initialized():
        return load_object(storage_url, workflow_id, content_hash)
    if _restore_task is None:
        _restore_task = ray.remote(num_cpus=0)(load_object)
    return _restore_task.remote(storage_url, workflow_id, content_hash)


#: Where the status hints are, and the marker saying every workflow of the storage is hinted.
STATUS_HINTS = "statusindex/by"
STATUS_INDEX_BUILT = "statusindex/built"
#: The recorded status of a workflow that has no status record yet (as ``_inspect.believed_status``).
_RECORDLESS_STATUS = WorkflowStatus.RUNNING.value
#: Every status a hint can name (RESUMABLE is never recorded: a reader derives it from RUNNING).
HINTED_STATUSES = tuple(status.value for status in WorkflowStatus if status != WorkflowStatus.RESUMABLE)


def status_hint_key(status: str, workflow_id: str) -> str:
    """The hint that ``workflow_id`` may have the recorded ``status``."""
    return f"{STATUS_HINTS}/{status}/{workflow_id}"


def list_status_hint_ids(storage: Storage, status: str) -> list[str]:
    """Ids of the workflows hinted with ``status``, sorted (one listing of one prefix)."""
    start = len(STATUS_HINTS) + len(status) + 2
    return [key[start:] for key in storage.list(f"{STATUS_HINTS}/{status}")]


def status_index_built(storage: Storage) -> bool:
    """Whether every workflow of the storage is hinted (else readers must read every status)."""
    return storage.exists(STATUS_INDEX_BUILT)


def mark_status_index_built(storage: Storage) -> None:
    retry_transient(lambda: storage.put(STATUS_INDEX_BUILT, b""), is_transient=is_transient_write_error)


#: Storage URLs this process found indexed (or made so), so creating a workflow checks once.
_indexed_storages: set[str] = set()


def mark_new_storage_indexed(storage: Storage) -> None:
    """Mark the index built when the storage holds no workflow yet: all to come are hinted.

    A storage with workflows and no marker was written by a version before the index; it needs
    ``durably index rebuild``, and is read by full scans until then. Checked once per process.
    """
    if storage.url in _indexed_storages:
        return
    if not status_index_built(storage) and next(iter(storage.list("index")), None) is None:
        mark_status_index_built(storage)
    _indexed_storages.add(storage.url)


def list_deleting_ids(storage: Storage) -> list[str]:
    """Ids of workflows whose deletion began and has not finished (a deleter was stopped)."""
    return [key[len("deleting/") :] for key in storage.list("deleting")]
