"""Workflow counts by status, recomputed at most every few seconds for every page and API caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from durably.inspect import Inspector

#: How old the counts may be (seconds). Counting lists the status index (and reads every status on a
#: storage whose index was never built: ``durably index rebuild``): with 100,000
#: workflows, live-refreshing pages must share one count rather than each start their own.
MAX_AGE = 10.0


class CachedCounts:
    """``Inspector.count_by_status`` shared between callers; one count at a time."""

    def __init__(self, inspector: Inspector, max_age: float = MAX_AGE) -> None:
        self._inspector = inspector
        self._max_age = max_age
        self._lock = threading.Lock()
        self._counts: Mapping[str, int] = {}
        self._taken: float | None = None  # time.monotonic() of the last count

    def get(self) -> Mapping[str, int]:
        with self._lock:
            if self._taken is None or time.monotonic() - self._taken > self._max_age:
                self._counts = dict(self._inspector.count_by_status())
                self._taken = time.monotonic()
            return self._counts

    def forget(self) -> None:
        """Count again at the next call (after this dashboard changed a workflow)."""
        with self._lock:
            self._taken = None
