"""Where engines run: threads of this process (``local``) or a detached Ray actor (``ray``).

The Ray host is one detached actor per cluster, so a workflow started with ``run_async`` goes
on after the driver that started it exits.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

from durably._driver import drive
from durably._graph import Graph
from durably._resolve import open_executor

ENGINE_ACTOR_NAME = "durably-engine"
ENGINE_NAMESPACE = "durably"


class EngineHost:
    """Runs workflow engines in threads of the current process, one per running workflow."""

    def __init__(self, executor_name: str) -> None:
        self.executor = open_executor(executor_name)
        self._cancel_events: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=10_000, thread_name_prefix="durably-engine")

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None) -> Any:
        key = (storage_url, workflow_id)
        event = threading.Event()
        with self._lock:
            self._cancel_events[key] = event
        try:
            return drive(storage_url, workflow_id, self.executor, graph, event)
        finally:
            with self._lock:
                if self._cancel_events.get(key) is event:
                    del self._cancel_events[key]

    def run_async(self, storage_url: str, workflow_id: str, graph: Graph | None) -> concurrent.futures.Future[Any]:
        return self._threads.submit(self.run, storage_url, workflow_id, graph)

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        """Signal a workflow run by this host; False if it runs elsewhere (or not at all)."""
        with self._lock:
            event = self._cancel_events.get((storage_url, workflow_id))
        if event is None:
            return False
        event.set()
        return True

    def ping(self) -> bool:
        return True


class RayEngineHost:
    """A handle on the cluster's detached engine actor (created on first use)."""

    def __init__(self) -> None:
        import ray

        actor_class = ray.remote(num_cpus=0, max_concurrency=10_000)(EngineHost)
        self.actor = actor_class.options(  # type: ignore[attr-defined]
            name=ENGINE_ACTOR_NAME,
            namespace=ENGINE_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
        ).remote("ray")

    def _wait_until_available(self, timeout: float = 120.0) -> None:
        """Block while the engine actor restarts (after it crashed), so calls are not lost to it."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            try:
                ray.get(self.actor.ping.remote(), timeout=timeout)
                return
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def run_async(self, storage_url: str, workflow_id: str, graph: Graph | None) -> Any:
        self._wait_until_available()
        return self.actor.run.remote(storage_url, workflow_id, graph)

    def run(self, storage_url: str, workflow_id: str, graph: Graph | None) -> Any:
        import ray

        try:
            return ray.get(self.run_async(storage_url, workflow_id, graph))
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, Exception):
                raise cause from cause.__cause__
            raise

    def cancel(self, storage_url: str, workflow_id: str) -> bool:
        import ray

        self._wait_until_available()
        return bool(ray.get(self.actor.cancel.remote(storage_url, workflow_id)))
