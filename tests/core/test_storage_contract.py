"""The built-in file:// and memory:// backends pass the StorageContract kit, plus file-specific checks."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import ray

from durably.storage import FileStorage, KeyNotFound, MemoryStorage, Storage
from durably.testing import StorageContract

T = TypeVar("T")


class TestFileStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        yield FileStorage(str(tmp_path / "store"))


class TestFileStorageWithNamedTemporaryFiles(StorageContract):
    """The same backend where the file system has no unnamed files (not Linux, or no O_TMPFILE)."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        storage = FileStorage(str(tmp_path / "store"))
        storage._unnamed_files = False
        yield storage


@pytest.fixture(scope="class")
def ray_disconnected() -> Iterator[None]:
    """This process not connected to Ray for a while; reconnected afterwards if it was."""
    address = ray.get_runtime_context().gcs_address if ray.is_initialized() else None
    if address is not None:
        ray.shutdown()
    yield
    if address is not None:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)


@pytest.fixture(scope="class")
def ray_connected() -> Iterator[None]:
    """This process connected to Ray: the session's cluster if there is one, else a local one."""
    if ray.is_initialized():
        yield
        return
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def _count_keys(url: str) -> int:
    return len(list(MemoryStorage(url).list("")))


class TestProcessLocalMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self, ray_disconnected: None) -> Iterator[Storage]:
        yield MemoryStorage(f"memory://contract-{uuid.uuid4().hex}")

    # Without Ray, memory:// is a dict in one process by design; another process has its own
    # (test_memory_is_not_shared_with_another_process, below).
    test_storage_rebuilt_in_another_process_shares_data_both_ways = None  # type: ignore[assignment]

    def test_memory_is_not_shared_with_another_process(self, storage: Storage) -> None:
        storage.put("k", b"1")
        assert self.run_in_another_process(_count_keys, storage.url) == 0


class TestRayMemoryStorage(StorageContract):
    @pytest.fixture(scope="class")
    @classmethod
    def ray_memory(cls, ray_connected: None) -> Iterator[MemoryStorage]:
        # One actor for the class, emptied after each test: starting an actor per test costs seconds.
        storage = MemoryStorage(f"memory://contract-{uuid.uuid4().hex}")
        yield storage
        ray.kill(storage._actor)

    @pytest.fixture
    def storage(self, ray_memory: MemoryStorage) -> Iterator[Storage]:
        assert list(ray_memory.list("")) == [], "the previous test left keys behind"
        yield ray_memory
        for top in {key.split("/")[0] for key in ray_memory.list("")}:
            ray_memory.delete_prefix(top)

    def run_in_another_process(self, function: Callable[..., T], *args: Any) -> T:
        # A Ray worker is the other process that matters: memory:// is shared through Ray.
        return ray.get(ray.remote(num_cpus=0)(function).remote(*args))  # type: ignore[no-any-return]


def _leave_temp_file(folder: Path, content: bytes) -> Path:
    """What a process killed between writing and renaming leaves behind (same name pattern)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".durably-tmp-", dir=folder)
    os.write(fd, content)
    os.close(fd)
    return Path(name)


def test_file_temp_file_left_by_a_crash_is_not_listed(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    storage.put("wf/step", b"done")
    _leave_temp_file(tmp_path / "wf", b"half a val")
    assert list(storage.list("wf")) == ["wf/step"]
    assert list(storage.list("")) == ["wf/step"]


def test_file_temp_file_left_by_a_crash_does_not_change_the_value(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    storage.put("wf/step", b"old value")
    _leave_temp_file(tmp_path / "wf", b"new val")
    assert storage.get("wf/step") == b"old value"


def test_file_temp_file_left_by_a_crash_does_not_create_the_key(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    _leave_temp_file(tmp_path / "wf", b"partial")
    with pytest.raises(KeyNotFound):
        storage.get("wf/step")
    assert storage.put_if_absent("wf/step", b"whole") is True


def test_file_temp_file_left_by_a_crash_cannot_be_read_as_a_key(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    temp = _leave_temp_file(tmp_path / "wf", b"partial")
    with pytest.raises(ValueError):
        storage.get(f"wf/{temp.name}")


def test_file_delete_prefix_does_not_count_a_temp_file_left_by_a_crash(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    storage.put("wf/step", b"done")
    _leave_temp_file(tmp_path / "wf", b"partial")
    assert storage.delete_prefix("wf") == 1
    assert not (tmp_path / "wf").exists()


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/outside", "a/../outside"])
def test_file_key_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    storage = FileStorage(str(root))
    with pytest.raises(ValueError):
        storage.put(key, b"escaped")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["root"]
    assert list(root.iterdir()) == []


def test_file_storage_url_is_an_absolute_file_url(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path / "relative" / ".." / "store"))
    assert storage.url == (tmp_path / "store").as_uri()


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux's")


def _die_before_linking(root: str, key: str) -> None:
    """Write ``key`` and die the moment the written file would be linked in under its name."""

    def killed(*_args: object, **_kwargs: object) -> None:
        os._exit(9)

    os.link = killed  # type: ignore[assignment]  # this child process only
    FileStorage(root).put_if_absent(key, b"a whole value")


@linux_only
def test_file_put_if_absent_killed_before_linking_leaves_no_file_behind(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    storage.put_if_absent("wf/first", b"there")
    child = multiprocessing.get_context("fork").Process(
        target=_die_before_linking, args=(str(tmp_path), "wf/step")
    )
    child.start()
    child.join(60)
    assert child.exitcode == 9, "the child did not reach the link"
    # The written bytes were in an unnamed file, which the file system freed with the process.
    assert sorted(os.listdir(tmp_path / "wf")) == ["first"]
    assert storage.put_if_absent("wf/step", b"whole") is True
    assert storage.get("wf/step") == b"whole"


@linux_only
def test_file_put_if_absent_writes_no_temporary_name_where_it_has_unnamed_files(tmp_path: Path) -> None:
    storage = FileStorage(str(tmp_path))
    assert storage.put_if_absent("a/b/c", b"1") is True
    assert storage.put_if_absent("a/b/c", b"2") is False
    assert storage._unnamed_files
    assert os.listdir(tmp_path / "a" / "b") == ["c"]
    assert storage.get("a/b/c") == b"1"


@pytest.mark.parametrize("unnamed", [True, False])
def test_file_created_key_is_private_to_its_owner(tmp_path: Path, unnamed: bool) -> None:
    storage = FileStorage(str(tmp_path))
    storage._unnamed_files = unnamed and storage._unnamed_files
    storage.put_if_absent("wf/step", b"secret")
    assert stat.S_IMODE((tmp_path / "wf" / "step").stat().st_mode) == 0o600


@linux_only
def test_file_put_if_absent_falls_back_to_a_named_file_where_unnamed_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_unnamed_files(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & getattr(os, "O_TMPFILE", 0) == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")  # as vfat or an old NFS answers
        return real_open(path, flags, *args, **kwargs)

    storage = FileStorage(str(tmp_path))
    monkeypatch.setattr(os, "open", no_unnamed_files)
    assert storage.put_if_absent("wf/step", b"value") is True
    assert not storage._unnamed_files
    assert storage.put_if_absent("wf/step", b"other") is False
    assert storage.get("wf/step") == b"value"
    assert os.listdir(tmp_path / "wf") == ["step"]
