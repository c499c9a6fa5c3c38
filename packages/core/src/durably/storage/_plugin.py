"""Registers the built-in file and memory backends through the ordinary storage hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durably.hookspecs import hookimpl
from durably.storage._base import Storage
from durably.storage._file import FileStorage
from durably.storage._memory import MemoryStorage


@hookimpl
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    return {"file": FileStorage, "memory": MemoryStorage}
