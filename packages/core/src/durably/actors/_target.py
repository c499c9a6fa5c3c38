"""Where a virtual actor call goes (``Target``) and which call is running in this context."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """Which actor a call goes to and how its calls run; small and picklable (handles carry it)."""

    storage_url: str
    executor: str
    actor_id: str
    #: The executor's ``has_cluster_host``: calls then go to a Ray actor hosting the virtual actor.
    #: The default is for Targets stored (inside actor steps) before this field existed: their
    #: calls are applied in the calling process, which the commit protocol keeps exactly-once.
    has_cluster_host: bool = False


@dataclass
class RunningCall:
    target: Target
    instance: Any
    readonly: bool


current_call: contextvars.ContextVar[RunningCall | None] = contextvars.ContextVar(
    "durably_actor_call", default=None
)
