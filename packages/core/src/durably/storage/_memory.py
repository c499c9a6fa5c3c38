"""The built-in ``memory://`` backend: data kept in memory, for tests and quick experiments.

In a process not connected to Ray, ``memory://NAME`` is a dict in that process. In a process
connected to Ray, it is held by one detached Ray actor (``durably-memory``, all names in it),
so that the driver, the engine and every worker see the same data for the life of the cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from durably.storage._base import KeyNotFound, validate_key


class _MemoryTable:
    """A thread-safe sorted-on-demand dict of keys to bytes."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._data[key] = bytes(data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = bytes(data)
            return True

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def exists(self, key: str) -> bool:
        return key in self._data

    def list(self, prefix: str) -> list[str]:
        start = prefix + "/" if prefix else ""
        with self._lock:
            return sorted(key for key in self._data if key.startswith(start))

    def delete_prefix(self, prefix: str) -> int:
        start = prefix + "/"
        with self._lock:
            doomed = [key for key in self._data if key == prefix or key.startswith(start)]
            for key in doomed:
                del self._data[key]
            return len(doomed)


_LOCAL_TABLES: dict[str, _MemoryTable] = {}
_LOCAL_TABLES_LOCK = threading.Lock()


def _local_table(name: str) -> _MemoryTable:
    with _LOCAL_TABLES_LOCK:
        return _LOCAL_TABLES.setdefault(name, _MemoryTable())


class _MemoryTables:
    """Every ``memory://`` table of a Ray cluster, in one actor (one process, however many names)."""

    def __init__(self) -> None:
        self._tables: dict[str, _MemoryTable] = {}
        self._lock = threading.Lock()

    def call(self, name: str, method: str, *args: Any) -> Any:
        with self._lock:
            table = self._tables.setdefault(name, _MemoryTable())
        return getattr(table, method)(*args)


def _ray_tables() -> Any:
    import ray

    # Ray's type stubs do not list actor options such as max_concurrency.
    tables_actor = ray.remote(num_cpus=0, max_concurrency=64)(_MemoryTables)  # type: ignore[call-overload]
    return tables_actor.options(
        name="durably-memory", namespace="durably", lifetime="detached", get_if_exists=True
    ).remote()


class MemoryStorage:
    """Storage held in memory; see the module docstring for where it lives."""

    def __init__(self, url: str = "memory://") -> None:
        parsed = urlparse(url)
        if parsed.scheme != "memory":
            raise ValueError(f"MemoryStorage takes memory:// URLs, not {url!r}")
        self.name = (parsed.netloc + parsed.path).strip("/") or "default"
        self.url = f"memory://{self.name}"
        self._actor: Any = None
        self._table: _MemoryTable | None = None
        try:
            import ray

            on_ray = ray.is_initialized()
        except ImportError:  # pragma: no cover - ray is a dependency of core
            on_ray = False
        if on_ray:
            self._actor = _ray_tables()
        else:
            self._table = _local_table(self.name)

    def __repr__(self) -> str:
        return f"MemoryStorage({self.url!r})"

    def __reduce__(self) -> tuple[type[MemoryStorage], tuple[str]]:
        return (MemoryStorage, (self.url,))

    def _call(self, method: str, *args: Any) -> Any:
        if self._table is not None:
            return getattr(self._table, method)(*args)
        import ray

        return ray.get(self._actor.call.remote(self.name, method, *args))

    def put(self, key: str, data: bytes) -> None:
        self._call("put", validate_key(key), data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return bool(self._call("put_if_absent", validate_key(key), data))

    def get(self, key: str) -> bytes:
        value = self._call("get", validate_key(key))
        if value is None:
            raise KeyNotFound(key)
        return bytes(value)

    def exists(self, key: str) -> bool:
        return bool(self._call("exists", validate_key(key)))

    def list(self, prefix: str) -> Iterator[str]:
        if prefix:
            validate_key(prefix)
        return iter(self._call("list", prefix))

    def delete_prefix(self, prefix: str) -> int:
        return int(self._call("delete_prefix", validate_key(prefix)))
