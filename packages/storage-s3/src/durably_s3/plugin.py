"""Registers the ``s3://`` storage scheme with durably (entry point ``durably: s3``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durably.hookspecs import hookimpl
from durably.storage import Storage


def open_s3_storage(url: str) -> Storage:
    """Build an S3Storage for ``url``; boto3 is imported here, not when the plugin is loaded."""
    from durably_s3._storage import S3Storage

    return S3Storage(url)


@hookimpl
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    return {"s3": open_s3_storage}
