"""The step protocol between the engine, executors and workers: the task, its outcome, its failure.

The engine hands an executor a :class:`StepTask`; the executor runs ``execute_step`` (or, for an
event step, ``run_event_step``) with it and the step's inputs, and gets back two results: the
step's *value*, passed on to the steps that consume it without a round trip through the engine,
and its :data:`StepOutcome`, which only the engine reads. A step that failed for good raises
:class:`StepFailure`. Executor authors get all of these from :mod:`durably.executors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durably._graph import Graph, StepSpec


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one step."""

    storage_url: str
    workflow_id: str
    spec: StepSpec
    #: The step was created at run time (inside a continuation), so its name is recorded too.
    dynamic: bool = False
    #: What plugins asked the driver to carry to the worker's step hooks (``durably_propagation_context``).
    context: Mapping[str, str] = field(default_factory=dict)
    #: The Ray runtime_env the step must run under: the workflow's code snapshot (``working_dir``
    #: and ``py_modules`` as ``gcs://`` URIs). None: the executor's default environment.
    runtime_env: Mapping[str, Any] | None = None
    #: Another driver may have run this step before (this run took the workflow over): the
    #: worker looks for its record before calling the step, as a retried task does.
    look_first: bool = False
    #: The runtime_env of the Ray job that started (or resumed) the workflow: the step runs under
    #: it as a Ray task runs under its job's, its own runtime_env merged over it (``env_vars``
    #: key by key). Ignored when ``runtime_env`` (a code snapshot) is given. None: nothing inherited.
    inherited_env: Mapping[str, Any] | None = None


class _Singleton:
    """A marker that pickles by reference, so it stays ``is``-comparable across processes (and small)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __reduce__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return self._name


class Done(_Singleton):
    """The step finished; its output is checkpointed (if it checkpoints) and is the step's value."""


class UnresolvedInput(_Singleton):
    """An input turned out to be a continuation's placeholder: the step did not run; submit it again."""


@dataclass(frozen=True)
class Continuation:
    """The step returned a sub-workflow (already stored as its continuation); its output is the step's."""

    graph: Graph


#: The one Done outcome.
DONE = Done("DONE")
#: The one UnresolvedInput outcome.
UNRESOLVED_INPUT = UnresolvedInput("UNRESOLVED_INPUT")

#: What the engine learns about a finished step run.
StepOutcome = Done | Continuation | UnresolvedInput


class Unresolved(_Singleton):
    """The value of a step that produced none (yet): a continuation, or a step whose input was unresolved."""


#: A step's value slot holds this when the step produced no value; a consumer that receives it
#: returns it again, unrun, with the outcome ``UNRESOLVED_INPUT``.
UNRESOLVED = Unresolved("UNRESOLVED")


class StepFailure(Exception):
    """What a worker raises when a step failed for good: the workflow, the step and the step's own error.

    (The engine's ``UncaughtStepFailure`` is a different thing: a failure nothing caught.)
    """

    def __init__(self, workflow_id: str, step_id: str, error: BaseException) -> None:
        super().__init__(workflow_id, step_id, error)
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.error = error

    def __str__(self) -> str:
        reason = f"{type(self.error).__name__}: {self.error}"
        return f"step {self.step_id!r} of workflow {self.workflow_id!r} failed: {reason}"


__all__ = [
    "DONE",
    "UNRESOLVED",
    "UNRESOLVED_INPUT",
    "Continuation",
    "Done",
    "StepFailure",
    "StepOutcome",
    "StepTask",
    "Unresolved",
    "UnresolvedInput",
]
