"""The Storage protocol that every backend implements, and the built-in backends."""

from durably.storage._base import (
    KeyNotFound,
    Storage,
    StorageError,
    StoragePermanentError,
    TransientStorageError,
    join_key,
    retry_transient,
    validate_key,
)
from durably.storage._file import FileStorage
from durably.storage._memory import MemoryStorage

__all__ = [
    "FileStorage",
    "KeyNotFound",
    "MemoryStorage",
    "Storage",
    "StorageError",
    "StoragePermanentError",
    "TransientStorageError",
    "join_key",
    "retry_transient",
    "validate_key",
]
