"""The lease that lets only one process drive a workflow at a time.

The protocol (what it guarantees and assumes is also in docs/guarantees.md):

* Leases are numbered records ``lease/<n>``; the highest number is the current one, and its
  number is the driver's *epoch*. A driver takes over by creating the next number with
  ``put_if_absent``, so two contenders cannot both win one epoch.
* The holder's identity is read when it takes the lease, not when durably is imported (a
  process forked after the import has its own): host name, boot id and PID namespace (where the
  platform has them), pid and the process's start time.
* The holder renews its record every quarter period, bumping a counter (``beat``). A renewal
  that fails is recorded on the lease (``renew_error``), never swallowed.
* A contender judges the holder by its own monotonic clock only: the holder is dead when its
  record has not changed for a full period (the holder's declared ``period``) as observed by the
  contender. No wall clocks of two machines are compared. Two shortcuts, both only where the
  holder shares the contender's host, boot and PID namespace: a holder whose process is gone
  (or whose pid now belongs to a younger process) is dead at once, and one whose process exists
  and is not stopped is alive, unless it is *dying*: a zombie, killed (SIGKILL pending) or
  orphaned since it took the lease (its parent, e.g. the raylet of a Ray cluster that died, is
  gone). A dying holder is waited for, a bounded time, instead of being reported as running:
  right after a crash the dead cluster's processes take seconds to exit.
* A holder that has not renewed for three quarters of its period stops driving by itself
  (``lost``): it cannot know whether a contender has already waited out the period. Its late
  writes cannot change a value: outputs are written once (``put_if_absent``) and its status
  records carry its epoch, and readers take the newest epoch's (``_store``). A step running in
  the holder's own process (the local executor) also checks the lease right before it writes
  its checkpoint (``check_held``) and drops the write when the lease is lost: the driver that
  took over may already be running that step again, and a late checkpoint would make that
  second run a re-execution of a checkpointed step.

Assumed: the holder's and contender's monotonic clocks run at about the same rate (not that
they agree), and a storage write becomes visible to readers in well under a quarter period.
The period is ``LEASE_SECONDS`` unless ``DURABLY_LEASE_SECONDS`` is set when a lease is taken
(the fault-injection suite uses a few seconds).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from typing import Any

from durably._errors import WorkflowRunningError
from durably.storage import KeyNotFound, retry_transient

#: The default lease period in seconds; ``DURABLY_LEASE_SECONDS`` overrides it.
LEASE_SECONDS = 30.0
LEASE_SECONDS_ENV = "DURABLY_LEASE_SECONDS"
#: A holder renews every this fraction of its period...
RENEW_FRACTION = 0.25
#: ...and stops driving when it has not renewed for this fraction of it.
SELF_FENCE_FRACTION = 0.75

_log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This process lost its lease on a workflow (taken over, or not renewed in time): stop driving it."""


def lease_seconds() -> float:
    """The period of a lease taken now (read each time, so tests and the fault suite can shorten it)."""
    configured = os.environ.get(LEASE_SECONDS_ENV)
    if configured:
        try:
            seconds = float(configured)
        except ValueError:
            raise ValueError(f"{LEASE_SECONDS_ENV}={configured!r} is not a number of seconds") from None
        if seconds <= 0:
            raise ValueError(f"{LEASE_SECONDS_ENV}={configured!r} must be a positive number of seconds")
        return seconds
    return LEASE_SECONDS


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process(pid: int) -> tuple[str, str] | None:
    """(start time, state letter) of ``pid`` from the kernel; ("unknown", "") without /proc; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode(), fields[0].decode()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "unknown", ""
        return "unknown", ""


def identity() -> dict[str, Any]:
    """Who this process is, read now: valid in a process forked after durably was imported."""
    pid = os.getpid()
    process = _process(pid)
    return {
        "host": socket.gethostname(),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _pid_namespace(),
        "pid": pid,
        "pid_start": process[0] if process else None,
        # A holder whose parent changes was orphaned: the process (a driver, the raylet) that
        # started it died, and it is most likely on its way out too (see ``is_dying``).
        "ppid": os.getppid(),
    }


#: Bit of SIGKILL in /proc/<pid>/status signal masks (signal n is bit n - 1).
_SIGKILL_BIT = 1 << 8


def is_dying(holder: dict[str, Any]) -> bool:
    """Whether the (existing) process an ``identity()`` describes is on its way out.

    A zombie, a process with SIGKILL pending (the kernel is tearing it down), or one orphaned
    since it took the lease. False when unknowable here (another host, no /proc).
    """
    if not _shares_process_table(holder, identity()):
        return False
    try:
        with open(f"/proc/{int(holder.get('pid', -1))}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except (OSError, ValueError):
        return False
    if fields.get("State", "").strip()[:1] in ("Z", "X"):
        return True
    for mask in ("SigPnd", "ShdPnd"):
        try:
            if int(fields.get(mask, "0").strip(), 16) & _SIGKILL_BIT:
                return True
        except ValueError:
            continue
    recorded_parent = holder.get("ppid")
    return recorded_parent is not None and fields.get("PPid", "").strip() != str(recorded_parent)


def _shares_process_table(record: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether the holder's pid means the same process here (same host, boot and PID namespace)."""
    return all(record.get(name) == mine[name] for name in ("host", "boot_id", "pid_ns"))


def process_is_gone(holder: dict[str, Any]) -> bool:
    """Whether the process an ``identity()`` describes has certainly exited (False when unknowable here)."""
    if not _shares_process_table(holder, identity()):
        return False
    process = _process(int(holder.get("pid", -1)))
    return process is None or process[0] != holder.get("pid_start", process[0])


class _Observer:
    """What this process saw of each lease record, and when by its own monotonic clock."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def unchanged_for(self, storage: Any, key: str, record: dict[str, Any]) -> float | None:
        """Seconds the record has been seen unchanged; None when it is new or changed since last seen."""
        fingerprint = json.dumps(record, sort_keys=True)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get((id(storage), key))
            if seen is None or seen[0] != fingerprint:
                self._seen[(id(storage), key)] = (fingerprint, now)
                return None if seen is None else -1.0
            return now - seen[1]


_observer = _Observer()

ALIVE, DEAD, UNKNOWN, DYING = "alive", "dead", "unknown", "dying"


def judge(storage: Any, key: str, record: dict[str, Any]) -> str:
    """ALIVE, DEAD, DYING (its process is on this host and exiting, see ``is_dying``), or
    UNKNOWN (not changed while watched, but not yet for a full period)."""
    if record.get("released"):
        return DEAD
    if _shares_process_table(record, identity()):
        if process_is_gone(record):
            return DEAD
        if is_dying(record):
            # A zombie nobody reaps is as dead as a holder whose record stopped changing.
            unchanged = _observer.unchanged_for(storage, key, record)
            period = float(record.get("period", LEASE_SECONDS))
            return DEAD if unchanged is not None and unchanged >= period else DYING
        process = _process(int(record.get("pid", -1)))
        if process is not None and process[1] not in ("T", "t", "Z", "X"):  # running or sleeping
            return ALIVE
    unchanged = _observer.unchanged_for(storage, key, record)
    if unchanged is not None and unchanged < 0:
        return ALIVE  # it changed since this process last looked: the holder renews
    period = float(record.get("period", LEASE_SECONDS))
    if unchanged is not None and unchanged >= period:
        return DEAD
    return UNKNOWN


class Lease:
    """One driver's claim on one workflow."""

    def __init__(self, storage: Any, prefix: str, workflow_id: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self.workflow_id = workflow_id
        self.owner = uuid.uuid4().hex
        self.number: int | None = None
        self.period = LEASE_SECONDS
        self.renew_error: BaseException | None = None
        self._identity: dict[str, Any] = {}
        self._beat = 0
        self._renewed_at = 0.0
        self._renewal_tried_at = 0.0
        self._lost = False
        self.released = False
        # The keeper thread may be renewing while the driver releases: without this lock its
        # renewal could land after the "released" record and make the lease look held again.
        self._renewal = threading.Lock()

    def _key(self, number: int) -> str:
        return f"{self.prefix}/{number:010d}"

    def _record(self, released: bool = False) -> bytes:
        record = {**self._identity, "owner": self.owner, "period": self.period, "beat": self._beat}
        if released:
            record["released"] = True
        return json.dumps(record).encode()

    def current(self) -> tuple[int, dict[str, Any]] | None:
        """The highest-numbered lease record, or None."""
        keys = list(self.storage.list(self.prefix))
        if not keys:
            return None
        number = int(keys[-1].rsplit("/", 1)[1])
        try:
            return number, json.loads(self.storage.get(keys[-1]))
        except KeyNotFound:
            return None

    @property
    def lost(self) -> bool:
        """True once another driver took over, or when this one could not renew in time (self-fencing)."""
        if self._lost:
            return True
        if (
            self.number is not None
            and time.monotonic() - self._renewed_at > self.period * SELF_FENCE_FRACTION
        ):
            self._lost = True
        return self._lost

    def acquire(self) -> None:
        """Take the lease, or raise WorkflowRunningError if a live driver holds it.

        A holder that may be dead but has not been watched for a full period yet is watched,
        so this can take up to one lease period.
        """
        for _ in range(16):
            held = self.current()
            dying_since: float | None = None
            while held is not None:
                verdict = judge(self.storage, self._key(held[0]), held[1])
                if verdict == DEAD:
                    break
                period = float(held[1].get("period", LEASE_SECONDS))
                if verdict == DYING:
                    # Waited for at most a period: an orphan that lives on is a driver after all.
                    dying_since = time.monotonic() if dying_since is None else dying_since
                    if time.monotonic() - dying_since > period:
                        verdict = ALIVE
                if verdict == ALIVE:
                    raise WorkflowRunningError(self.workflow_id, describe_holder(self.storage, self.prefix))
                time.sleep(min(0.5, period / 10))
                held = self.current()
            number = 0 if held is None else held[0] + 1
            self.period = lease_seconds()
            self._identity = identity()
            self._renewed_at = self._renewal_tried_at = time.monotonic()
            if self._claim(number):
                self.number = number
                self.released = False
                _keeper.hold(self)
                _latest[(id(self.storage), self.prefix)] = self
                return
        raise WorkflowRunningError(self.workflow_id, "another driver is taking it over right now")

    def _claim(self, number: int) -> bool:
        """Create lease record ``number`` for this driver; False when another contender created it.

        Transient storage errors are retried; a retry after a lost answer finds the record this
        driver wrote (its owner id) and counts it as created.
        """
        key, record = self._key(number), self._record()
        if retry_transient(lambda: self.storage.put_if_absent(key, record)):
            return True
        try:
            return bool(json.loads(retry_transient(lambda: self.storage.get(key))).get("owner") == self.owner)
        except KeyNotFound:
            return False

    @property
    def renewal_due(self) -> float:
        """When (``time.monotonic``) the keeper should renew next: a quarter period after the last try."""
        return self._renewal_tried_at + self.period * RENEW_FRACTION

    def renew(self) -> bool:
        """Extend the lease; False (and ``lost`` set) when another driver has taken it over.

        Storage errors propagate: the keeper records them, and ``lost`` turns True by itself
        when renewals keep failing.
        """
        with self._renewal:
            started = self._renewal_tried_at = time.monotonic()
            if self.number is None or self.lost or self.released:
                return False
            if self.storage.exists(self._key(self.number + 1)):
                self._lost = True
                return False
            self._beat += 1
            self.storage.put(self._key(self.number), self._record())
            self._renewed_at = started
            self.renew_error = None
            return True

    def stop_renewing(self) -> None:
        """Stop renewing without writing anything: the workflow's records are about to be deleted."""
        _keeper.drop(self)
        self._forget()

    def _forget(self) -> None:
        """Leave ``check_held``'s table, unless lost (a step may still be about to write)."""
        key = (id(self.storage), self.prefix)
        if _latest.get(key) is self and not self.lost:
            _latest.pop(key, None)

    def release(self) -> None:
        """Give the lease up (the workflow's final status is already stored)."""
        _keeper.drop(self)
        self._forget()
        with self._renewal:
            self.released = True
            if self.number is not None and not self.lost:
                self.storage.put(self._key(self.number), self._record(released=True))


class _LeaseKeeper:
    """One background thread per process renews every lease this process holds, each when it is due.

    A lease is renewed a quarter period after it was taken or last tried, not whenever another
    is taken: a process that starts a thousand workflows at once would otherwise rewrite every
    lease it holds at each start (a fsynced write each, quadratic in the workflows started).
    """

    def __init__(self) -> None:
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="durably-lease-keeper", daemon=True)
                self._thread.start()
        self._wake.set()  # a lease due sooner than the others shortens the keeper's sleep now

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            self._wake.clear()
            with self._lock:
                leases = list(self._leases)
            for lease in leases:
                if lease.renewal_due > time.monotonic():
                    continue
                try:
                    lease.renew()
                except Exception as error:  # kept on the lease; ``lost`` fences it if this lasts
                    lease.renew_error = error
                    _log.warning("cannot renew the lease of workflow %r: %s", lease.workflow_id, error)
            due = min((lease.renewal_due for lease in leases), default=None)
            # Without leases the keeper sleeps until ``hold`` wakes it.
            self._wake.wait(None if due is None else max(0.0, due - time.monotonic()))


_keeper = _LeaseKeeper()
#: The lease this process holds per (storage, prefix). A lost one stays after its release (until
#: this process takes that lease again): a step thread of a driver that stopped on a lost lease
#: may still be about to write its checkpoint. Only lost leases outlive their run, so it stays small.
_latest: dict[tuple[int, str], Lease] = {}


def check_held(storage: Any, prefix: str) -> None:
    """Raise LeaseLost if this process took the lease under ``prefix`` of ``storage`` and lost it.

    Called by a step that runs in its driver's own process right before it writes its
    checkpoint. A driver paused past its lease (GC, SIGSTOP, a suspended VM) learns of the loss
    from its own monotonic clock the moment it runs again, before its engine thread does, so its
    late checkpoint is dropped instead of landing under the step the new driver is running. A
    pause between this check and the write itself is not covered (see docs/guarantees.md).
    Nothing to check where no lease was taken (a Ray worker: its driver is another process).
    """
    lease = _latest.get((id(storage), prefix))
    if lease is not None and lease.storage is storage and lease.lost:
        raise LeaseLost(f"the lease on workflow {lease.workflow_id!r} was lost: its checkpoint is dropped")


def current_epoch(storage: Any, prefix: str) -> int:
    """The number of the newest lease (0 when none was taken): the epoch a status is written under."""
    held = Lease(storage, prefix, "").current()
    return 0 if held is None else held[0]


def lease_is_live(storage: Any, prefix: str) -> bool:
    """Whether some driver may hold the workflow's lease right now (not yet judged dead)."""
    lease = Lease(storage, prefix, "")
    held = lease.current()
    return held is not None and judge(storage, lease._key(held[0]), held[1]) != DEAD


def describe_holder(storage: Any, prefix: str) -> str:
    """Who holds the lease and when the workflow can be taken over, for WorkflowRunningError."""
    lease = Lease(storage, prefix, "")
    held = lease.current()
    if held is None:
        return "no driver holds it any more: try again"
    key, record = lease._key(held[0]), held[1]
    period = float(record.get("period", LEASE_SECONDS))
    who = f"held by pid {record.get('pid')} on host {record.get('host')}"
    verdict = judge(storage, key, record)
    if verdict == DEAD:
        return f"{who}, which has stopped: try again"
    if verdict == DYING:
        return f"{who}, which is exiting (killed or orphaned): try again in a few seconds"
    unchanged = _observer.unchanged_for(storage, key, record)
    if verdict == UNKNOWN and unchanged is not None and unchanged >= 0:
        return (
            f"{who}; renewals stopped {unchanged:.0f} s ago as seen from here; "
            f"resumable in {max(period - unchanged, 0.0):.0f} s unless it renews"
        )
    if _shares_process_table(record, identity()):
        return f"{who}, a running process on this host: wait for it to finish, or stop it first"
    return (
        f"{who}, which renews it every {period * RENEW_FRACTION:.0f} s; if that driver has stopped, "
        f"the workflow is resumable {period:.0f} s after its last renewal"
    )


def wait_for_holder(storage: Any, prefix: str, workflow_id: str, timeout: float) -> None:
    """Wait up to ``timeout`` s while the lease's holder is dying or has stopped renewing.

    Says so once (a warning on the ``durably`` logger, which without logging configured is
    printed to stderr). A live holder, or one still there after ``timeout``, raises
    WorkflowRunningError saying who holds it and when it can be resumed. Returns at once when
    nobody holds the lease.
    """
    lease = Lease(storage, prefix, workflow_id)
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        held = lease.current()
        if held is None:
            return
        key, record = lease._key(held[0]), held[1]
        verdict = judge(storage, key, record)
        if verdict == DEAD:
            return
        if verdict == ALIVE or time.monotonic() >= deadline:
            raise WorkflowRunningError(workflow_id, describe_holder(storage, prefix))
        if not announced:
            announced = True
            why = "is exiting" if verdict == DYING else "may have stopped (its lease is not renewed)"
            _log.warning(
                "workflow %r: its previous driver (pid %s on host %s) %s; waiting up to %.0f s "
                "for it to go before resuming",
                workflow_id,
                record.get("pid"),
                record.get("host"),
                why,
                timeout,
            )
        time.sleep(min(0.2, float(record.get("period", LEASE_SECONDS)) / 10))
