"""The ``local`` executor: steps run in threads of this process. For debugging and quick tests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from durably._protocol import StepTask
from durably._runner import execute_step
from durably.events._hosts import local_event_loop


def _settle(
    value: Any, info: Any, result: Any = None, details: Any = None, error: BaseException | None = None
) -> None:
    """Complete both futures, unless the workflow was cancelled meanwhile (then nobody waits)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            value.set_exception(error)
            info.set_exception(error)
        else:
            value.set_result(result)
            info.set_result(details)


class LocalExecutor:
    """Runs each step in a thread pool once its inputs are ready; no Ray needed."""

    name = "local"
    has_cluster_host = False
    #: Steps run in this process, with its code: a workflow's code snapshot cannot apply here.
    supports_runtime_env = False

    def __init__(self, max_workers: int | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or max(32, (os.cpu_count() or 1) * 8), thread_name_prefix="durably-step"
        )

    def submit_event(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        # Every event step of this process waits on one event loop thread, not in the pool.
        return local_event_loop().submit(task, inputs)

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        value: concurrent.futures.Future[Any] = concurrent.futures.Future()
        info: concurrent.futures.Future[Any] = concurrent.futures.Future()
        pending = [item for item in inputs if isinstance(item, concurrent.futures.Future)]
        remaining = [len(pending)]
        lock = threading.Lock()

        def run() -> None:
            if not value.set_running_or_notify_cancel():
                info.cancel()
                return
            info.set_running_or_notify_cancel()
            try:
                resolved = [
                    item.result() if isinstance(item, concurrent.futures.Future) else item for item in inputs
                ]
                result, details = execute_step(task, *resolved)
            except BaseException as error:
                _settle(value, info, error=error)
            else:
                _settle(value, info, result=result, details=details)

        def input_done(_: concurrent.futures.Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                self._start(run, value, info)

        if not pending:
            self._start(run, value, info)
        for item in pending:
            item.add_done_callback(input_done)
        return value, info

    def _start(
        self, run: Any, value: concurrent.futures.Future[Any], info: concurrent.futures.Future[Any]
    ) -> None:
        try:
            self._pool.submit(run)
        except RuntimeError as error:  # the pool is shut down: the interpreter is exiting
            if not value.done():
                value.set_exception(error)
                info.set_exception(error)

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        done, _ = concurrent.futures.wait(
            handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return [handle for handle in handles if handle in done]

    def result(self, handle: Any) -> Any:
        return handle.result()

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            handle.cancel()

    def error_of(self, error: BaseException) -> BaseException:
        return error
