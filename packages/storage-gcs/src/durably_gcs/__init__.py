"""durably-gcs: keep durably workflows in Google Cloud Storage (``gs://bucket/prefix``).

Importing this package is cheap: google-cloud-storage is imported only when a GCSStorage is
built, so processes that merely have the plugin installed (every Ray worker) do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durably_gcs._storage import GCSLocation, GCSStorage

__all__ = ["GCSLocation", "GCSStorage"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from durably_gcs import _storage

        return getattr(_storage, name)
    raise AttributeError(f"module 'durably_gcs' has no attribute {name!r}")
