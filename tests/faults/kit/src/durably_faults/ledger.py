"""Append-only JSON-line files shared by every process of a run: step attempts, storage writes, callers.

Each line is written with one ``write`` on a file opened with ``O_APPEND``, so lines from many
processes interleave but never mix, and a process killed mid-run leaves only whole lines behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def append(path: str | Path, **fields: Any) -> None:
    """Append one record (with the writer's pid and a system-wide monotonic time) to ``path``."""
    record = {"pid": os.getpid(), "ns": time.monotonic_ns(), **fields}
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every whole record in ``path`` (none when it does not exist yet)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a reader may race a writer's line; whole lines only
            continue
    return records
