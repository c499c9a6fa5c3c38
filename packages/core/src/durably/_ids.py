"""Workflow ids: validation of the user's, and unique time-sortable generated ones."""

from __future__ import annotations

import os
import threading
import time

_counter_lock = threading.Lock()
_last_stamp = 0


def validate_workflow_id(workflow_id: str) -> str:
    """Return the id, or raise ValueError saying what is wrong and what is allowed."""
    if not isinstance(workflow_id, str):
        raise TypeError(f"workflow_id must be a str, got {type(workflow_id).__name__}")
    if not workflow_id or not workflow_id.strip():
        raise ValueError(
            "workflow_id must not be empty; pass a name like 'orders-2024-06-01' or leave it out"
        )
    if "/" in workflow_id or "\\" in workflow_id:
        raise ValueError(f"workflow_id {workflow_id!r} must not contain '/' or '\\'")
    if workflow_id in (".", "..") or workflow_id.startswith(".durably-tmp-"):
        raise ValueError(f"workflow_id {workflow_id!r} is reserved")
    if any(ord(ch) < 32 for ch in workflow_id):
        raise ValueError(f"workflow_id {workflow_id!r} must not contain control characters")
    if len(workflow_id) > 200:
        raise ValueError(f"workflow_id is {len(workflow_id)} characters long; 200 at most")
    return workflow_id


def generate_workflow_id(prefix: str = "wf") -> str:
    """A unique id whose string order is its creation order (microsecond stamp + counter + pid)."""
    global _last_stamp
    with _counter_lock:
        stamp = max(time.time_ns() // 1000, _last_stamp + 1)
        _last_stamp = stamp
    return f"{prefix}-{stamp:016d}-{os.getpid() % 100000:05d}"
