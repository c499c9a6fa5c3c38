"""The workflow API: ``from durably import workflow`` is a drop-in for Ray 1.x's ``from ray import workflow``."""

from __future__ import annotations

from durably._api import (
    cancel,
    delete,
    get_metadata,
    get_output,
    get_status,
    init,
    list_all,
    resume,
    resume_all,
    resume_async,
)
from durably._errors import (
    CheckpointCorruptedError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowRunningError,
)
from durably._status import WorkflowStatus
from durably._step import StepFunction, Workflow, step
from durably.events import EventListener

__all__ = [
    "CheckpointCorruptedError",
    "EventListener",
    "StepFunction",
    "Workflow",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowRunningError",
    "WorkflowStatus",
    "cancel",
    "delete",
    "get_metadata",
    "get_output",
    "get_status",
    "init",
    "list_all",
    "resume",
    "resume_all",
    "resume_async",
    "step",
]
