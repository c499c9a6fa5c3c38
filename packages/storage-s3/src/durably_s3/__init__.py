"""durably-s3: keep durably workflows in Amazon S3 or an S3-compatible server (``s3://bucket/prefix``).

Importing this package is cheap: boto3 (most of a second to import) is loaded only when an
S3Storage is first used, so processes that merely have the plugin installed do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durably_s3._storage import S3Storage

__all__ = ["S3Storage"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from durably_s3 import _storage

        return getattr(_storage, name)
    raise AttributeError(f"module 'durably_s3' has no attribute {name!r}")
