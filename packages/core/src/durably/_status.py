"""The states a workflow can be in."""

from __future__ import annotations

from enum import Enum


class WorkflowStatus(str, Enum):
    """Where a workflow stands; the value is the name, so statuses compare equal to strings."""

    #: Being driven by a live engine right now.
    RUNNING = "RUNNING"
    #: Finished; its output is stored.
    SUCCESSFUL = "SUCCESSFUL"
    #: A step failed for good; resume runs the unfinished steps again.
    FAILED = "FAILED"
    #: Was running when its driver died; nobody drives it now; resume continues it.
    RESUMABLE = "RESUMABLE"
    #: Cancelled with ``workflow.cancel``.
    CANCELED = "CANCELED"
    #: Submitted but waiting for a free slot (``max_running_workflows``).
    PENDING = "PENDING"

    def __str__(self) -> str:
        return self.value
