"""The built-in ``file://`` backend: one file per key, written atomically."""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from durably.storage._base import KeyNotFound, StoragePermanentError, validate_key

#: How often a folder refilled by a racing writer is walked again before deletion gives up.
_DELETE_PASSES = 5
_TEMP_PREFIX = ".durably-tmp-"
# fdatasync skips flushing metadata (such as access times) that a checkpoint does not need.
_sync_data = getattr(os, "fdatasync", os.fsync)
#: Linux's unnamed files: ``put_if_absent`` writes one and links it in under its key, so a write
#: creates one name (the key) instead of three operations on the folder (create a temporary name,
#: link, unlink it). It is linked through ``/proc/self/fd``, so both must be there.
_O_TMPFILE: int | None = getattr(os, "O_TMPFILE", None) if os.path.isdir("/proc/self/fd") else None
#: What opening an unnamed file answers on a file system (or kernel) that has none.
_NO_UNNAMED_FILES = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS})


def _path_from_url(url: str) -> Path:
    if "://" not in url:
        return Path(url).expanduser().resolve()
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ValueError(f"FileStorage takes file:// URLs or paths, not {url!r}")
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"file:// URL {url!r} names a host; use file:///absolute/path")
    return Path(unquote(parsed.path)).expanduser().resolve()


def _sync_folder(folder: Path) -> None:
    """Make the folder's entries (a file renamed or linked into it, a new subfolder) survive a power cut."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: folders cannot be opened, NTFS journals them
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FolderSyncer:
    """Fsyncs the folders that writes linked files into, in a background thread (group commit).

    A write returns once its bytes are fsynced and its name is linked in; the folder's fsync,
    which makes the name survive a power cut, runs behind it, and one fsync covers every name
    linked into the folder since the previous one. A chain of steps thus pays one fsync per step
    instead of two. ``flush`` waits for the folders scheduled so far; ``FileStorage.sync`` uses
    it before the records that say a workflow finished. A failed fsync is raised by the next
    write or flush of this process.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._pending: set[str] = set()
        self._scheduled = 0
        self._synced = 0
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def schedule(self, folder: Path) -> None:
        with self._changed:
            self._raise_error()
            self._pending.add(str(folder))
            self._scheduled += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="durably-folder-sync", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self) -> None:
        with self._changed:
            target = self._scheduled
            while self._synced < target and self._error is None:
                self._changed.wait()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending:
                    self._changed.wait()
                batch, self._pending = self._pending, set()
                upto = self._scheduled
            try:
                for folder in batch:
                    with contextlib.suppress(FileNotFoundError):  # deleted since: nothing to keep
                        _sync_folder(Path(folder))
            except OSError as error:
                with self._changed:
                    # Reported once, by the next write or flush; the batch counts as done, so a
                    # later flush does not wait for it forever.
                    self._error = error
                    self._synced = max(self._synced, upto)
                    self._changed.notify_all()
                continue
            with self._changed:
                self._synced = max(self._synced, upto)
                self._changed.notify_all()


_FOLDERS = _FolderSyncer()
# A forked child starts with no syncer thread and nothing of its parent's to sync.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FOLDERS._reset)


def _flush_at_exit() -> None:
    """An interpreter that exits normally leaves nothing unsynced behind."""
    with contextlib.suppress(OSError):
        _FOLDERS.flush()


atexit.register(_flush_at_exit)


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` and make it durable (fdatasync).

    An empty value (a marker, such as a status hint) has no bytes to make durable: its name
    is all it is, and the name is the folder's fsync to keep, as any key's.
    """
    if not data:
        return
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    _sync_data(fd)


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents; each parent is fsynced behind, as a key's folder."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue  # another writer created it (and syncs its parent)
        _FOLDERS.schedule(new.parent)


class FileStorage:
    """Keys are files below a root folder; writes go to a temporary file, are fsynced, then renamed.

    Readers therefore see either the old value or the new one, never a part. ``put_if_absent``
    publishes the fsynced file with ``link``, which fails atomically if the key exists; on Linux
    that file is unnamed (``O_TMPFILE``) until linked, so the key is the only name it ever has.
    The folder a key is renamed or linked into, and the parent of a folder created for it, are
    fsynced right after, in the background (one fsync for many keys), and ``sync`` waits for it:
    a key survives a power cut with its folder, not only its bytes, once ``sync`` returned (or
    about one fsync after its write). A crash of any process never loses a written key.
    """

    def __init__(self, url: str) -> None:
        self.root = _path_from_url(url)
        self.url = self.root.as_uri()
        # Turned off at the first refusal: the root's file system has no unnamed files.
        self._unnamed_files = _O_TMPFILE is not None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoragePermanentError(f"cannot create storage folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileStorage({self.url!r})"

    def __reduce__(self) -> tuple[type[FileStorage], tuple[str]]:
        return (FileStorage, (self.url,))

    def _path(self, key: str) -> Path:
        validate_key(key)
        if any(segment.startswith(_TEMP_PREFIX) for segment in key.split("/")):
            raise ValueError(f"storage key {key!r} uses the reserved prefix {_TEMP_PREFIX!r}")
        return self.root / key

    def _write_temp(self, path: Path, data: bytes) -> str:
        _make_folders(path.parent)
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            os.unlink(temp_name)
            raise
        os.close(fd)
        return temp_name

    def _link_unnamed(self, path: Path, data: bytes) -> bool | None:
        """``put_if_absent`` through an unnamed file: fsynced, then linked in under ``path``.

        None when the root's file system has no unnamed files (and ``put_if_absent`` falls back
        to a named temporary file). A crash before the link leaves nothing behind: the file
        system frees an unnamed file with its last descriptor.
        """
        assert _O_TMPFILE is not None
        try:
            folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            _make_folders(path.parent)
            folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(".", _O_TMPFILE | os.O_WRONLY, 0o600, dir_fd=folder_fd)
            except OSError as exc:
                if exc.errno not in _NO_UNNAMED_FILES:
                    raise
                self._unnamed_files = False
                return None
            try:
                _write_all(fd, data)
                # dst_dir_fd makes Python call linkat(AT_SYMLINK_FOLLOW), which links the file
                # that the /proc link names (a plain link() would link the link itself).
                os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=folder_fd)
            except FileExistsError:
                return False
            finally:
                os.close(fd)
        finally:
            os.close(folder_fd)
        _FOLDERS.schedule(path.parent)
        return True

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temp_name = self._write_temp(path, data)
        try:
            os.replace(temp_name, path)
        except BaseException:
            os.unlink(temp_name)
            raise
        _FOLDERS.schedule(path.parent)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if self._unnamed_files:
            created = self._link_unnamed(path, data)
            if created is not None:
                return created
        temp_name = self._write_temp(path, data)
        try:
            os.link(temp_name, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(temp_name)
        _FOLDERS.schedule(path.parent)
        return True

    def sync(self, prefix: str) -> None:
        """Make every key written at or under ``prefix`` so far, by any process, survive a power cut.

        Writes sync their folders in the background (see ``_FolderSyncer``); this waits for this
        process's, then fsyncs each folder under ``prefix`` itself, for those other processes
        (Ray workers) linked names or created folders in, and the folders above it up to the
        root, which hold the names of those (an fsync of a folder with nothing new is cheap).
        A ``prefix`` that is a key syncs that key's folder and those above it.
        """
        _FOLDERS.flush()
        base = self._path(prefix) if prefix else self.root
        below = () if base.is_file() else (Path(folder) for folder, _subfolders, _files in os.walk(base))
        above = base.parents[: len(base.relative_to(self.root).parts)]  # up to the root, included
        for folder in itertools.chain(below, above):
            with contextlib.suppress(FileNotFoundError):
                _sync_folder(folder)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return iter(())
        keys: list[str] = []
        # Keys are built by joining names (not with pathlib, which costs more than the scan
        # itself on an index of 100,000 workflows).
        pending = [(str(base), prefix)]
        while pending:
            folder, folder_key = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX):
                    continue
                key = f"{folder_key}/{entry.name}" if folder_key else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, key))
                else:
                    keys.append(key)
        keys.sort()
        return iter(keys)

    def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix)
        deleted = 0
        if path.is_file():
            path.unlink(missing_ok=True)
            deleted += 1
        # A writer racing the deletion (a lease attempt's temporary file) may add or remove
        # entries while the tree is walked: missing entries are fine, and a folder that was
        # refilled is walked again.
        for _attempt in range(_DELETE_PASSES):
            if not path.is_dir():
                break
            for folder, subfolders, files in os.walk(path, topdown=False):
                for name in files:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))
                        deleted += 0 if name.startswith(_TEMP_PREFIX) else 1
                for name in subfolders:
                    with contextlib.suppress(FileNotFoundError, OSError):
                        os.rmdir(os.path.join(folder, name))
            with contextlib.suppress(FileNotFoundError, OSError):
                os.rmdir(path)
        if path.is_dir():
            raise OSError(f"{path} kept being written to while it was deleted; delete it again")
        return deleted
