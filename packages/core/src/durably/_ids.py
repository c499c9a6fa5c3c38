"""Workflow ids: validation of the user's, and unique time-sortable generated ones."""

from __future__ import annotations

import os
import threading
import time
import unicodedata

#: Bytes a storage key segment may take (a file name on every common file system).
MAX_SEGMENT_BYTES = 255
#: Bytes a step name may take: durably appends ``_<n>`` or ``.<digest>`` to make step ids unique.
MAX_STEP_NAME_BYTES = 200
_TEMP_PREFIX = ".durably-tmp-"
#: Control, format (bidi overrides, zero-width) and line/paragraph separator characters: they
#: cannot be stored as a key, or make a printed id lie about itself (``durably list``).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})

_counter_lock = threading.Lock()


def _unprintable(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in _UNPRINTABLE:
            return f"U+{ord(ch):04X} {unicodedata.name(ch, 'control character')}"
    return None


def validate_step_name(name: str) -> str:
    """Return the step name, or raise ValueError saying why it cannot be stored as part of a key."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"step name must be a non-empty string, got {name!r}")
    if "/" in name:
        raise ValueError(f"step name {name!r} must not contain '/'; pick another with name=...")
    if name in (".", "..") or name.startswith(_TEMP_PREFIX):
        raise ValueError(f"step name {name!r} is reserved; pick another with name=...")
    bad = _unprintable(name)
    if bad is not None:
        raise ValueError(f"step name {name!r} contains {bad}; use printable characters")
    size = len(name.encode())
    if size > MAX_STEP_NAME_BYTES:
        raise ValueError(
            f"step name {name[:40]!r}... is {size} bytes in UTF-8; {MAX_STEP_NAME_BYTES} at most "
            "(it is part of a storage key); shorten it with name=..."
        )
    return name


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
    if workflow_id in (".", "..") or workflow_id.startswith(_TEMP_PREFIX):
        raise ValueError(f"workflow_id {workflow_id!r} is reserved")
    bad = _unprintable(workflow_id)
    if bad is not None:
        raise ValueError(f"workflow_id {workflow_id!r} contains {bad}; use printable characters")
    if len(workflow_id) > 200:
        raise ValueError(f"workflow_id is {len(workflow_id)} characters long; 200 at most")
    size = len(workflow_id.encode())
    if size > MAX_SEGMENT_BYTES:
        raise ValueError(
            f"workflow_id {workflow_id[:40]!r}... is {size} bytes in UTF-8; {MAX_SEGMENT_BYTES} at most "
            "(it names a storage key)"
        )
    return workflow_id


def generate_workflow_id(prefix: str = "wf") -> str:
    """A unique id whose string order is its creation order (microsecond stamp + counter + pid)."""
    global _last_stamp
    with _counter_lock:
        stamp = max(time.time_ns() // 1000, _last_stamp + 1)
        _last_stamp = stamp
    return f"{prefix}-{stamp:016d}-{os.getpid() % 100000:05d}"
