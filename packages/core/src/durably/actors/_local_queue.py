"""The ``local`` way to apply an actor's calls in order: a queue per actor in this process."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from durably.actors._target import Target


class _SerialQueue:
    """Runs submitted calls one at a time, in submission order, on a shared thread pool."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._pool = pool
        self._items: collections.deque[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._draining = False

    def submit(self, work: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._items.append((future, work))
            start = not self._draining
            self._draining = True
        if start:
            self._pool.submit(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    self._draining = False
                    return
                future, work = self._items.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as error:
                future.set_exception(error)


pool = concurrent.futures.ThreadPoolExecutor(max_workers=10_000, thread_name_prefix="durably-actor")
_queues: dict[tuple[str, str], _SerialQueue] = {}
_queues_lock = threading.Lock()


def queue_for(target: Target) -> _SerialQueue:
    key = (target.storage_url, target.actor_id)
    queue = _queues.get(key)
    if queue is None:
        with _queues_lock:
            queue = _queues.setdefault(key, _SerialQueue(pool))
    return queue
