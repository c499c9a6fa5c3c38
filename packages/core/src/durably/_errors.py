"""The exceptions durably raises; each message names the workflow (and step) it is about."""

from __future__ import annotations

import pickle
from typing import Any


class WorkflowError(Exception):
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


class WorkflowNotFoundError(WorkflowError, KeyError):
    """No workflow (or step, or actor) with that id exists in the configured storage."""

    def __init__(self, workflow_id: str, detail: str = "") -> None:
        self.workflow_id = workflow_id
        message = f"no workflow with id {workflow_id!r} in this storage"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __str__(self) -> str:
        return str(self.args[0])


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


class WorkflowRunningError(WorkflowError):
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


class CheckpointCorruptedError(WorkflowError):
    """A stored checkpoint is truncated or altered; durably refuses to use it."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(
            f"checkpoint {key!r} is corrupted ({reason}); durably will not use it. "
            "Restore it from a backup, or delete the workflow and run it again."
        )
