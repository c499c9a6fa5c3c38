"""Executors decide where a step runs: ``ray`` (the default) or ``local`` threads.

An executor hands out opaque handles for a step's two results: its value (passed on to the
steps that consume it, without a round trip through the engine) and a small info tuple the
engine reads to learn what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from durably._runner import StepTask


class Executor(Protocol):
    """Runs steps somewhere; the engine only talks to it through this interface."""

    #: The name ``workflow.init(executor=...)`` selects it by.
    name: str

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        """Start ``execute_step(task, *inputs)`` once the handles among ``inputs`` are ready.

        Returns (value handle, info handle). A failed input fails the step with the same error.
        """

    def submit_event(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        """Like ``submit``, for an event step (``task.spec.event``): run ``events._runner.run_event_step``.

        An event step may wait for hours; it must not hold a worker or a CPU while it does (the
        built-in executors run every event step of a process or cluster on one event loop).
        """

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        """The handles among ``handles`` that are finished (at least one unless ``timeout`` ran out)."""

    def result(self, handle: Any) -> Any:
        """The value behind a finished handle, raising the step's error if it failed."""

    def cancel(self, handles: Sequence[Any]) -> None:
        """Stop the steps behind ``handles`` (running ones are interrupted where possible)."""

    def error_of(self, error: BaseException) -> BaseException:
        """The step's own exception inside an executor-specific wrapper (or ``error`` itself)."""
