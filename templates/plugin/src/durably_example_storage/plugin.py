"""Registers the ``example://`` scheme with durably (entry point ``durably: example`` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durably import hookimpl
from durably.storage import Storage


def open_example_storage(url: str) -> Storage:
    """Build the storage for ``url``; durably calls this in every process that needs it."""
    # Import the implementation (and, in a real backend, its client library) only when used,
    # so that loading the plugin stays cheap for processes that never use the scheme.
    from durably_example_storage._storage import ExampleStorage

    return ExampleStorage(url)


@hookimpl
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    return {"example": open_example_storage}
