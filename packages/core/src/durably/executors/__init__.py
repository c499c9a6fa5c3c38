"""Executors decide where a step runs: ``ray`` (the default) or ``local`` threads.

This module is the step protocol for executor authors: the :class:`Executor` interface, the
:class:`StepTask` the engine hands over, :func:`execute_step` and :func:`run_event_step` (what
an executor runs with it), the :data:`StepOutcome` they return beside the step's value, and
:class:`StepFailure` (what they raise when the step failed for good).

An executor hands out opaque handles for a step's two results: its value (passed on to the
steps that consume it, without a round trip through the engine) and its outcome, which the
engine reads to learn what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from durably._protocol import (
    DONE,
    UNRESOLVED,
    UNRESOLVED_INPUT,
    Continuation,
    Done,
    StepFailure,
    StepOutcome,
    StepTask,
    Unresolved,
    UnresolvedInput,
)
from durably._runner import execute_step
from durably.events._runner import run_event_step


class Executor(Protocol):
    """Runs steps somewhere; the engine only talks to it through this interface."""

    #: The name ``workflow.init(executor=...)`` selects it by.
    name: str
    #: True if the executor runs on a Ray cluster that durably may use as a cluster-wide host:
    #: ``init`` then connects to Ray, engines run in the cluster's detached engine actor (so
    #: ``run_async`` outlives its driver), each virtual actor is hosted by a Ray actor, event
    #: waits are woken through the cluster's events actor, and ``get_output_async`` returns a
    #: ``ray.ObjectRef``. False: all of these live in threads of the calling process.
    has_cluster_host: bool
    # Optional: ``supports_runtime_env = True`` says the executor honours ``StepTask.runtime_env``
    # (a workflow's code snapshot, Ray's runtime_env format); without it, workflows that have a
    # snapshot are refused (``getattr(executor, "supports_runtime_env", False)``).
    # Optional: ``wait_clock() -> Callable[[], bool]`` starts a zero-CPU task and returns a check
    # that is True once it ran; a ``workflow.wait`` timeout then counts from there (as Ray 1.x's
    # wait task did), not from when the engine reached the wait.

    def submit(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        """Start ``execute_step(task, *inputs)`` once the handles among ``inputs`` are ready.

        Returns (value handle, outcome handle). A failed input fails the step with the same error.
        """

    def submit_event(self, task: StepTask, inputs: Sequence[Any]) -> tuple[Any, Any]:
        """Like ``submit``, for an event step (``task.spec.event``): run the coroutine ``run_event_step``.

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


__all__ = [
    "DONE",
    "UNRESOLVED",
    "UNRESOLVED_INPUT",
    "Continuation",
    "Done",
    "Executor",
    "StepFailure",
    "StepOutcome",
    "StepTask",
    "Unresolved",
    "UnresolvedInput",
    "execute_step",
    "run_event_step",
]
