"""The exceptions durably raises; each message names the workflow (and step) it is about."""

from __future__ import annotations

import pickle
from typing import Any


class DurablyError(Exception):
    """Root of every exception durably raises on purpose (workflow errors, storage errors, ...)."""


class WorkflowError(DurablyError):
    """Base class of every durably workflow error."""

    _init_args: tuple[Any, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        original_init = cls.__init__

        def init_remembering_arguments(self: WorkflowError, *args: Any) -> None:
            original_init(self, *args)
            self._init_args = args

        cls.__init__ = init_remembering_arguments  # type: ignore[method-assign, assignment]

    def __reduce__(self) -> Any:
        # Rebuild from the constructor's own arguments, so the message survives pickling
        # (between Ray processes, and into the stored status of a failed workflow).
        if self._init_args:
            return (type(self), self._init_args)
        return super().__reduce__()


class WorkflowNotFoundError(WorkflowError, KeyError, ValueError):
    """No workflow (or step, or actor) with that id exists in the configured storage.

    A ``KeyError`` (a lookup that found nothing) and a ``ValueError``, the kind Ray's
    ``ray.workflow`` raised for an unknown id, so code written for either catches it.
    """

    def __init__(self, workflow_id: str, detail: str = "") -> None:
        self.workflow_id = workflow_id
        message = f"No such workflow_id {workflow_id!r} in this storage"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __str__(self) -> str:
        return str(self.args[0])


class StepNotFoundError(WorkflowNotFoundError):
    """The workflow exists but has no step (Ray: task) with that name."""

    def __init__(self, workflow_id: str, name: str) -> None:
        super().__init__(workflow_id)
        self.name = name
        self.args = (f"No such task_id {name!r} in workflow {workflow_id!r}: no step of it has that name",)


class WorkflowExecutionError(WorkflowError):
    """A step failed for good; ``__cause__`` is the step's own exception."""

    def __init__(self, workflow_id: str, step_id: str | None, cause: BaseException | str) -> None:
        self.workflow_id = workflow_id
        self.step_id = step_id
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        where = f"step {step_id!r} of workflow {workflow_id!r}" if step_id else f"workflow {workflow_id!r}"
        super().__init__(f"{where} failed: {reason}")
        if isinstance(cause, BaseException):
            self.__cause__ = cause

    def __reduce__(self) -> Any:
        # Keep the cause itself when it pickles (it becomes __cause__ again); else its text.
        workflow_id, step_id, cause = self._init_args
        if isinstance(cause, BaseException):
            try:
                pickle.dumps(cause)
            except Exception:
                cause = f"{type(cause).__name__}: {cause}"
        return (type(self), (workflow_id, step_id, cause))


class WorkflowCancellationError(WorkflowError):
    """The workflow was cancelled with ``workflow.cancel``."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"workflow {workflow_id!r} was cancelled")


class WorkflowRunningError(WorkflowError, RuntimeError):
    """The workflow is being run by another caller (a live lease holds it)."""

    def __init__(self, workflow_id: str, detail: str = "") -> None:
        self.workflow_id = workflow_id
        message = f"workflow {workflow_id!r} is already running"
        super().__init__(f"{message} ({detail})" if detail else message)


class WorkflowNotResumableError(WorkflowError):
    """The workflow cannot be resumed (it was cancelled, or nothing of it is stored)."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"workflow {workflow_id!r} cannot be resumed: {reason}")


class NothingToResumeError(WorkflowNotFoundError, WorkflowNotResumableError):
    """``resume`` of an id with nothing stored: not found, and so not resumable (Ray's error)."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        # Not through super(): the two parents take different arguments; the message is the first's.
        message = f"No such workflow_id {workflow_id!r} in this storage: nothing to resume"
        WorkflowError.__init__(self, message)


class CheckpointCorruptedError(WorkflowError):
    """A stored checkpoint is truncated or altered; durably refuses to use it."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(
            f"checkpoint {key!r} is corrupted ({reason}); durably will not use it. "
            "Restore it from a backup, or delete the workflow and run it again."
        )


class WorkflowQueueFullError(WorkflowError):
    """A workflow was submitted while ``max_pending_workflows`` workflows were already waiting."""

    def __init__(self, workflow_id: str, max_running: int, max_pending: int) -> None:
        self.workflow_id = workflow_id
        super().__init__(
            f"cannot submit workflow {workflow_id!r}: {max_running} workflows are running "
            f"and {max_pending} are pending (max_pending_workflows); wait for some to finish, or "
            "raise max_running_workflows / max_pending_workflows in workflow.init()"
        )


class UnknownStorageSchemeError(DurablyError, ValueError):
    """No installed storage backend serves the scheme of a storage URL."""

    def __init__(self, url: str, scheme: str, hint: str, known: str) -> None:
        self.url = url
        self.scheme = scheme
        super().__init__(
            f"no durably storage backend serves the {scheme!r} scheme of {url!r}: {hint}. "
            f"Schemes available now: {known}."
        )


class ActorNotFoundError(WorkflowNotFoundError):
    """No virtual actor with that id exists in the configured storage."""

    def __init__(self, actor_id: str) -> None:
        super().__init__(actor_id)
        self.actor_id = actor_id
        self.args = (f"no virtual actor with id {actor_id!r} in this storage",)


class ActorMethodError(WorkflowExecutionError):
    """A virtual actor's method raised; the actor's state is unchanged and ``__cause__`` is the error."""

    def __init__(self, actor_id: str, method: str, cause: BaseException | str) -> None:
        super().__init__(actor_id, method, cause)
        self.actor_id = actor_id
        self.method = method
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        self.args = (f"method {method!r} of virtual actor {actor_id!r} failed: {reason}",)

    def __str__(self) -> str:
        return str(self.args[0])


def also_instance_of(error: WorkflowExecutionError, kind: type[BaseException]) -> WorkflowExecutionError:
    """``error``, as an instance of a class that is also a ``kind``, so ``except kind`` catches it.

    Ray raised a failed workflow's output as the step's own error type (and 1.x as a
    ``RaySystemError``); code written for it catches those. The error stays a
    ``WorkflowExecutionError`` with the same message and cause. When Python cannot make such a
    class (``kind``'s instance layout conflicts, as for ``OSError``), ``error`` is returned as it is.
    """
    if isinstance(error, kind):
        return error
    try:
        combined = _combined_class(type(error), kind)
        copy: WorkflowExecutionError = BaseException.__new__(combined, *error.args)
    except TypeError:
        return error
    copy.__dict__.update(error.__dict__)
    copy.__cause__, copy.__traceback__ = error.__cause__, error.__traceback__
    return copy


_COMBINED: dict[tuple[type[BaseException], type[BaseException]], type[WorkflowExecutionError]] = {}


def _combined_class(
    base: type[WorkflowExecutionError], kind: type[BaseException]
) -> type[WorkflowExecutionError]:
    key = (base, kind)
    if key not in _COMBINED:

        def reduce(self: WorkflowExecutionError) -> Any:
            # Rebuilt as the plain error, then combined again: the class is made at run time.
            plain = BaseException.__new__(base, *self.args)
            plain.__dict__.update(self.__dict__)
            return (also_instance_of, (plain, kind))

        _COMBINED[key] = type(
            base.__name__,
            (base, kind),
            # kind's own __str__ may read attributes its __init__ set (RaySystemError's does).
            {"__str__": BaseException.__str__, "__reduce__": reduce, "__module__": base.__module__},
        )
    return _COMBINED[key]
