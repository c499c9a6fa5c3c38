"""Registers the ``gs://`` and ``gcs://`` storage schemes with durably (entry point ``durably``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durably.hookspecs import hookimpl
from durably.storage import Storage


def open_gcs_storage(url: str) -> Storage:
    """Build a GCSStorage for ``url``; google-cloud-storage is imported here, not at plugin load."""
    from durably_gcs._storage import GCSStorage

    return GCSStorage(url)


@hookimpl
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    return {"gs": open_gcs_storage, "gcs": open_gcs_storage}
