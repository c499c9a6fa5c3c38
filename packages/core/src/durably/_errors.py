"""The exceptions durably raises; each message names the workflow (and step) it is about."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every durably workflow error."""


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

    def __reduce__(self) -> tuple[type[WorkflowExecutionError], tuple[str, str | None, str]]:
        return (type(self), (self.workflow_id, self.step_id, self._reason()))

    def _reason(self) -> str:
        return str(self.args[0]).split(" failed: ", 1)[-1]


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
