"""The lease that lets only one process drive a workflow at a time.

Leases are numbered records ``lease/<n>``; the highest number is the current one. A driver
takes over by creating the next number with ``put_if_absent``, so two contenders cannot both
win. The holder renews its record; it is dead when its time is up, or at once when it ran on
this host and its process no longer exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
import weakref
from typing import Any

from durably._errors import WorkflowRunningError
from durably.storage import KeyNotFound

LEASE_SECONDS = 30.0
RENEW_EVERY = LEASE_SECONDS / 3
_HOST = socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart), or None if it is not running."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "unknown"
        return "unknown"


_MY_START = _process_start(os.getpid())


def holder_is_alive(record: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process described by a lease record may still be driving the workflow."""
    if record.get("released"):
        return False
    if record.get("expires_at", 0) < (now if now is not None else time.time()):
        return False
    if record.get("host") == _HOST:
        started = _process_start(int(record.get("pid", -1)))
        return started is not None and started == record.get("pid_start", started)
    return True


class Lease:
    """One driver's claim on one workflow."""

    def __init__(self, storage: Any, prefix: str, workflow_id: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self.workflow_id = workflow_id
        self.owner = uuid.uuid4().hex
        self.number: int | None = None
        self.lost = False
        self.released = False
        # The keeper thread may be renewing while the driver releases: without this lock its
        # renewal could land after the "released" record and make the lease look held again.
        self._renewal = threading.Lock()

    def _key(self, number: int) -> str:
        return f"{self.prefix}/{number:010d}"

    def _record(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "host": _HOST,
                "pid": os.getpid(),
                "pid_start": _MY_START,
                "expires_at": time.time() + LEASE_SECONDS,
            }
        ).encode()

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

    def acquire(self) -> None:
        """Take the lease, or raise WorkflowRunningError if a live driver holds it."""
        for _ in range(16):
            held = self.current()
            if held is not None and holder_is_alive(held[1]):
                raise WorkflowRunningError(
                    self.workflow_id, f"driven by pid {held[1].get('pid')} on {held[1].get('host')}"
                )
            number = 0 if held is None else held[0] + 1
            if self.storage.put_if_absent(self._key(number), self._record()):
                self.number = number
                self.released = False
                _keeper.hold(self)
                return
        raise WorkflowRunningError(self.workflow_id, "another driver is taking it over right now")

    def renew(self) -> bool:
        """Extend the lease; False (and ``lost`` set) when another driver has taken it over."""
        with self._renewal:
            if self.number is None or self.lost or self.released:
                return False
            if self.storage.exists(self._key(self.number + 1)):
                self.lost = True
                return False
            self.storage.put(self._key(self.number), self._record())
            return True

    def stop_renewing(self) -> None:
        """Stop renewing without writing anything: the workflow's records are about to be deleted."""
        _keeper.drop(self)

    def release(self) -> None:
        """Give the lease up (the workflow's final status is already stored)."""
        _keeper.drop(self)
        with self._renewal:
            self.released = True
            if self.number is not None and not self.lost:
                record = json.loads(self._record())
                record["released"] = True
                self.storage.put(self._key(self.number), json.dumps(record).encode())


class _LeaseKeeper:
    """One background thread per process renews every lease this process holds."""

    def __init__(self) -> None:
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="durably-lease-keeper", daemon=True)
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            with self._lock:
                leases = list(self._leases)
            for lease in leases:
                # A storage hiccup is tried again next round, well before the lease expires.
                with contextlib.suppress(Exception):
                    lease.renew()


_keeper = _LeaseKeeper()


def lease_is_live(storage: Any, prefix: str) -> bool:
    """Whether some live driver holds the workflow's lease right now."""
    held = Lease(storage, prefix, "").current()
    return held is not None and holder_is_alive(held[1])
