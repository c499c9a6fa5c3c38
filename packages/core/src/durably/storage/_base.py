"""The Storage protocol: a small, synchronous, bytes-only key-value interface."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar, runtime_checkable

from durably._errors import DurablyError

T = TypeVar("T")


class StorageError(DurablyError):
    """Base class of every error a storage backend raises."""


class KeyNotFound(StorageError, KeyError):
    """``get`` was asked for a key that does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no object at key {self.key!r}"


class TransientStorageError(StorageError):
    """A failure that may succeed when retried (throttling, 5xx, a reset connection)."""


class StoragePermanentError(StorageError):
    """A failure that retrying cannot fix (missing bucket, denied access, bad configuration)."""


@runtime_checkable
class Storage(Protocol):
    """What a storage backend provides; the store above it owns keys and formats.

    Keys are ``/``-separated relative paths of printable characters, never starting
    or ending with ``/`` and never containing empty, ``.`` or ``..`` segments.
    Every method is safe to call from several threads and processes at once, and a
    reader never observes a partially written value.
    """

    #: The URL this backend was built from; building a backend from it again in any
    #: process (a Ray worker, say) must reach the same data.
    url: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, atomically replacing any previous value."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` unless it exists; True when this call created it."""

    def get(self, key: str) -> bytes:
        """Return the value at ``key``; raise :class:`KeyNotFound` when there is none."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value."""

    def list(self, prefix: str) -> Iterator[str]:
        """Yield every key that starts with ``prefix`` + ``/`` (or all keys for ``""``), sorted."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete ``prefix`` itself and every key under ``prefix/``; return how many were deleted."""


def validate_key(key: str) -> str:
    """Return ``key`` unchanged, or raise ValueError saying why it is not a valid storage key."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"storage key must be a non-empty string, got {key!r}")
    if key.startswith("/") or key.endswith("/"):
        raise ValueError(f"storage key {key!r} must not start or end with '/'")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"storage key {key!r} has an empty, '.' or '..' segment")
    if any(ord(ch) < 32 for ch in key):
        raise ValueError(f"storage key {key!r} contains a control character")
    return key


def join_key(*parts: str) -> str:
    """Join key segments with ``/``, skipping empty ones."""
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


#: How long :func:`retry_transient` keeps trying one operation in all, by default (seconds).
#: ``DURABLY_STORAGE_RETRY_SECONDS`` overrides it. A backend whose client retries one request on
#: its own bounds that by this same deadline (durably-gcs does); otherwise the client's time would
#: multiply by the attempts: a lasting fault fails after at most this plus one attempt.
RETRY_DEADLINE_SECONDS = 60.0
RETRY_DEADLINE_ENV = "DURABLY_STORAGE_RETRY_SECONDS"


def retry_deadline_seconds() -> float:
    """The total retry deadline: ``DURABLY_STORAGE_RETRY_SECONDS`` if set, else ``RETRY_DEADLINE_SECONDS``."""
    raw = os.environ.get(RETRY_DEADLINE_ENV)
    if raw is None or not raw.strip():
        return RETRY_DEADLINE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            f"{RETRY_DEADLINE_ENV}={raw!r} is not a positive number of seconds; unset it or give e.g. 60"
        )
    return seconds


def retry_transient(
    operation: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool] = lambda exc: isinstance(exc, TransientStorageError),
    attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 5.0,
    deadline: float | None = None,
    what: str = "a storage operation",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``operation`` until it succeeds, retrying transient failures with capped, jittered backoff.

    At most ``attempts`` attempts, and none started after ``deadline`` seconds in all (default
    :func:`retry_deadline_seconds`): then :class:`TransientStorageError` names ``what`` (say,
    ``"put of 'workflows/w/status'"``), the attempts and the last cause. When the attempts run
    out first, the last error itself is raised. ``clock`` and ``sleep`` are for tests.
    """
    limit = retry_deadline_seconds() if deadline is None else deadline
    started = clock()
    for attempt in range(attempts):
        try:
            return operation()
        except BaseException as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            delay = min(max_delay, base_delay * (2**attempt)) * (0.5 + random.random() / 2)
            elapsed = clock() - started
            if elapsed + delay > limit:
                raise TransientStorageError(
                    f"{what} still failed after {attempt + 1} attempt(s) in {elapsed:.1f} s, past the "
                    f"retry deadline of {limit:g} s ({RETRY_DEADLINE_ENV}); last cause: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
