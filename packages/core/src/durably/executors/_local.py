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
        _SubmittedStep(task, inputs, value, info).wait_for_inputs(self)
        return value, info

    def _start(self, step: _SubmittedStep) -> None:
        try:
            self._pool.submit(step.run)
        except RuntimeError as error:  # the pool is shut down: the interpreter is exiting
            step.settle(error=error)

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


class _SubmittedStep:
    """A submitted step: it starts in the pool once its last input future is done.

    An input future keeps its done-callbacks (this step's ``input_done``) for as long as it
    lives, so once the step has run it lets go of its task, inputs and futures: otherwise each
    finished step's future would keep its consumer's, and a chain of them every later step's.
    """

    __slots__ = ("executor", "info", "inputs", "lock", "remaining", "task", "value")

    def __init__(
        self,
        task: StepTask,
        inputs: Sequence[Any],
        value: concurrent.futures.Future[Any],
        info: concurrent.futures.Future[Any],
    ) -> None:
        self.task: StepTask | None = task
        self.inputs: Sequence[Any] = inputs
        self.value: concurrent.futures.Future[Any] | None = value
        self.info: concurrent.futures.Future[Any] | None = info
        self.executor: LocalExecutor | None = None
        self.remaining = 0
        self.lock = threading.Lock()

    def wait_for_inputs(self, executor: LocalExecutor) -> None:
        pending = [item for item in self.inputs if isinstance(item, concurrent.futures.Future)]
        self.executor = executor
        self.remaining = len(pending)
        if not pending:
            executor._start(self)
        for item in pending:
            item.add_done_callback(self.input_done)

    def input_done(self, _: concurrent.futures.Future[Any]) -> None:
        with self.lock:
            self.remaining -= 1
            executor = self.executor if self.remaining == 0 else None
        if executor is not None:
            executor._start(self)

    def run(self) -> None:
        value, info, task, inputs = self.value, self.info, self.task, self.inputs
        assert value is not None and info is not None and task is not None  # runs once
        self.inputs, self.task, self.executor = (), None, None
        if not value.set_running_or_notify_cancel():
            info.cancel()
            self.value = self.info = None
            return
        info.set_running_or_notify_cancel()
        try:
            resolved = [
                item.result() if isinstance(item, concurrent.futures.Future) else item for item in inputs
            ]
            del inputs
            result, details = execute_step(task, *resolved)
        except BaseException as error:
            self.settle(error=error)
        else:
            self.settle(result=result, details=details)

    def settle(self, result: Any = None, details: Any = None, error: BaseException | None = None) -> None:
        """Complete both futures, then forget them: only the engine and the consumers hold them."""
        value, info = self.value, self.info
        self.value = self.info = None
        self.inputs, self.task, self.executor = (), None, None
        if value is None or info is None:
            return
        # Unless the workflow was cancelled meanwhile (then nobody waits).
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if error is not None:
                value.set_exception(error)
                info.set_exception(error)
            else:
                value.set_result(result)
                info.set_result(details)
