"""durably: durable workflows for Ray.

``from durably import workflow`` gives the Ray 1.x workflow API; ``durably.init`` is
``workflow.init``; plugins use ``durably.hookimpl``.
"""

from durably import workflow
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
from durably._status import WorkflowStatus
from durably.events import EventListener
from durably.hookspecs import hookimpl
from durably.storage import KeyNotFound, Storage, StorageError
from durably.workflow import init

__all__ = [
    "ActorMethodError",
    "ActorNotFoundError",
    "CheckpointCorruptedError",
    "DurablyError",
    "EventListener",
    "KeyNotFound",
    "Storage",
    "StorageError",
    "UnknownStorageSchemeError",
    "WorkflowCancellationError",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowNotFoundError",
    "WorkflowNotResumableError",
    "WorkflowQueueFullError",
    "WorkflowRunningError",
    "WorkflowStatus",
    "hookimpl",
    "init",
    "workflow",
]
