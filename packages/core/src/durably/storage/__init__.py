"""The Storage protocol that every backend implements, the built-in backends, and helpers for plugins."""

from durably.storage._base import (
    RETRY_DEADLINE_ENV,
    RETRY_DEADLINE_SECONDS,
    KeyNotFound,
    Storage,
    StorageError,
    StoragePermanentError,
    TransientStorageError,
    join_key,
    retry_deadline_seconds,
    retry_transient,
    validate_key,
)
from durably.storage._create import WRITER_METADATA, Creation, create_once
from durably.storage._file import FileStorage
from durably.storage._memory import MemoryStorage
from durably.storage._url import StorageURL, format_storage_url, parse_storage_url

__all__ = [
    "RETRY_DEADLINE_ENV",
    "RETRY_DEADLINE_SECONDS",
    "WRITER_METADATA",
    "Creation",
    "FileStorage",
    "KeyNotFound",
    "MemoryStorage",
    "Storage",
    "StorageError",
    "StoragePermanentError",
    "StorageURL",
    "TransientStorageError",
    "create_once",
    "format_storage_url",
    "join_key",
    "parse_storage_url",
    "retry_deadline_seconds",
    "retry_transient",
    "validate_key",
]
