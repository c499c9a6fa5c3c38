"""``ExampleStorage``: the Storage protocol over a local folder, one file per key, written atomically."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from durably.storage import (
    KeyNotFound,
    StoragePermanentError,
    TransientStorageError,
    format_storage_url,
    parse_storage_url,
    retry_transient,
    validate_key,
)

T = TypeVar("T")

SCHEME = "example"
#: Files being written carry this prefix until they are published under their key's name.
_TEMP_PREFIX = ".example-tmp-"
#: OS errors that may go away when retried (a busy or briefly unreachable network file system).
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ESTALE, errno.ETIMEDOUT})


def root_from_url(url: str) -> Path:
    """The folder an ``example:///absolute/path`` URL names.

    durably's parser applies the rules every backend shares (the scheme, no credentials, each
    option known and given once); a backend with options lists them in ``options=`` and reads
    them with ``parsed.option(name)``, ``parsed.flag(name)`` or ``parsed.endpoint(name)``.
    """
    parsed = parse_storage_url(
        url, schemes=(SCHEME,), example=f"{SCHEME}:///absolute/path", needs_bucket=False
    )
    if not parsed.path.startswith("/"):
        raise ValueError(f"storage URL {url!r} must name an absolute folder: {SCHEME}:///absolute/path")
    return Path(parsed.path).resolve()


class ExampleStorage:
    """Keys are files below a root folder; each write goes to a temporary file that is then published.

    * ``put`` publishes with ``os.replace``, and ``put_if_absent`` with ``os.link``, which fails
      if the key exists: both are atomic, so a reader sees the old value or the new one, never a
      part, and of several racing ``put_if_absent`` exactly one wins.
    * OS errors that retrying may fix are retried with :func:`durably.storage.retry_transient`
      and raise :class:`~durably.storage.TransientStorageError` if they persist; the others
      raise :class:`~durably.storage.StoragePermanentError` at once.
    * Only the URL is pickled (``__reduce__``): every process, Ray workers included, rebuilds the
      storage from it. A backend with a network client creates the client lazily, after unpickling.
    """

    def __init__(self, url: str) -> None:
        self.root = root_from_url(url)
        #: The canonical URL: building an ExampleStorage from it in any process reaches the same data.
        self.url = format_storage_url(SCHEME, "", self.root.as_posix(), {})
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoragePermanentError(f"cannot create the storage folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"ExampleStorage({self.url!r})"

    def __reduce__(self) -> tuple[type[ExampleStorage], tuple[str]]:
        return (ExampleStorage, (self.url,))

    # -- helpers ------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        validate_key(key)  # raises ValueError for "", "/a", "a//b", "..", control characters
        if any(segment.startswith(_TEMP_PREFIX) for segment in key.split("/")):
            raise ValueError(f"storage key {key!r} uses the reserved prefix {_TEMP_PREFIX!r}")
        return self.root / key

    def _call(self, operation: Callable[[], T]) -> T:
        """Run a file-system operation: transient OS errors are retried, the others are permanent."""

        def attempt() -> T:
            try:
                return operation()
            except OSError as exc:
                if exc.errno in _TRANSIENT_ERRNOS:
                    raise TransientStorageError(f"{self.url}: {exc}") from exc
                raise StoragePermanentError(f"{self.url}: {exc}") from exc

        return retry_transient(attempt)

    def _publish(self, path: Path, data: bytes, *, replace: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            if replace:
                os.replace(temp_name, path)
                return True
            try:
                os.link(temp_name, path)
            except FileExistsError:
                return False
            return True
        finally:
            if not replace or os.path.exists(temp_name):
                os.unlink(temp_name)

    # -- the Storage protocol -----------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, atomically replacing any previous value."""
        path = self._path(key)
        self._call(lambda: self._publish(path, data, replace=True))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` unless it exists; True when this call created it."""
        path = self._path(key)
        return self._call(lambda: self._publish(path, data, replace=False))

    def get(self, key: str) -> bytes:
        """The value at ``key``; :class:`~durably.storage.KeyNotFound` when there is none."""
        path = self._path(key)

        def read() -> bytes:
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise KeyNotFound(key) from None

        return self._call(read)

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value."""
        path = self._path(key)
        return self._call(path.is_file)

    def list(self, prefix: str) -> Iterator[str]:
        """Every key below ``prefix/`` (every key for ``""``), sorted as whole strings."""
        base = self._path(prefix) if prefix else self.root

        def walk() -> list[str]:
            keys = []
            for folder, _, files in os.walk(base):
                relative = Path(folder).relative_to(self.root)
                keys += [(relative / name).as_posix() for name in files if not name.startswith(_TEMP_PREFIX)]
            return sorted(keys)

        return iter(self._call(walk))

    def delete_prefix(self, prefix: str) -> int:
        """Delete the key ``prefix`` and every key below ``prefix/``; return how many were deleted."""
        path = self._path(prefix)

        def delete() -> int:
            deleted = 0
            if path.is_file():
                path.unlink(missing_ok=True)
                deleted += 1
            for folder, _, files in os.walk(path, topdown=False):
                for name in files:
                    os.unlink(os.path.join(folder, name))
                    deleted += 0 if name.startswith(_TEMP_PREFIX) else 1
                try:
                    os.rmdir(folder)
                except OSError as exc:  # a concurrent writer created a new key here: keep it
                    if exc.errno != errno.ENOTEMPTY:
                        raise
            return deleted

        return self._call(delete)
