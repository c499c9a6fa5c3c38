"""The workflow API: ``from durably import workflow`` is a drop-in for ``from ray import workflow``.

Ray 1.x code (``@workflow.step``, ``.step()``, ``.run()``) and Ray 2.x code (``@ray.remote``,
``.bind()``, ``workflow.run(dag)``, ``workflow.continuation``, ``workflow.options``) both run.
"""

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
    ActorMethodError,
    ActorNotFoundError,
    CheckpointCorruptedError,
    DurablyError,
    UnknownStorageSchemeError,
    WorkflowCancellationError,
    WorkflowError,
    WorkflowExecutionError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowQueueFullError,
    WorkflowRunningError,
)
from durably._ray_dag import continuation, get_output_async, options, run, run_async
from durably._status import WorkflowStatus
from durably._step import StepFunction, Workflow, step
from durably.actors import (
    ActorHandle,
    delete_actor,
    get_actor,
    list_actors,
    virtual_actor,
)
from durably.events import EventListener
from durably.events._external import ExternalEvent, send_event
from durably.events._steps import sleep, wait_for_event

# Ray's module exported each status under its own name (``workflow.RUNNING``); code compares
# statuses to these, so they are the same members as ``WorkflowStatus``'s.
RUNNING = WorkflowStatus.RUNNING
SUCCESSFUL = WorkflowStatus.SUCCESSFUL
FAILED = WorkflowStatus.FAILED
RESUMABLE = WorkflowStatus.RESUMABLE
CANCELED = WorkflowStatus.CANCELED
PENDING = WorkflowStatus.PENDING

__all__ = [
    "CANCELED",
    "FAILED",
    "PENDING",
    "RESUMABLE",
    "RUNNING",
    "SUCCESSFUL",
    "ActorHandle",
    "ActorMethodError",
    "ActorNotFoundError",
    "CheckpointCorruptedError",
    "DurablyError",
    "EventListener",
    "ExternalEvent",
    "StepFunction",
    "UnknownStorageSchemeError",
    "Workflow",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowQueueFullError",
    "WorkflowRunningError",
    "WorkflowStatus",
    "cancel",
    "continuation",
    "delete",
    "delete_actor",
    "get_actor",
    "get_metadata",
    "get_output",
    "get_output_async",
    "get_status",
    "init",
    "list_actors",
    "list_all",
    "options",
    "resume",
    "resume_all",
    "resume_async",
    "run",
    "run_async",
    "send_event",
    "sleep",
    "step",
    "virtual_actor",
    "wait_for_event",
]
