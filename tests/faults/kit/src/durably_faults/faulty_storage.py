"""``faulty+file://`` storage: a file backend whose writes fail, lose their answer or stall, on purpose.

``faulty+file:///root?seed=7&before=0.02&after=0.02&slow=0.05&slow_seconds=1`` opens
``file:///root`` and, on each ``put``/``put_if_absent``, draws from a seeded RNG: with probability
``before`` it raises :class:`TransientStorageError` without writing (a refused write), with
``after`` it writes and then raises (the write succeeded, its answer was lost), with ``slow`` it
sleeps ``slow_seconds`` before writing. The plugin is registered through the ``durably`` entry
point, so Ray workers and the engine actor build the same faulty storage from the URL.

Every successful write and every injected fault is appended to ``<root>.writes`` (see
:mod:`durably_faults.ledger`), which the checker reads to date checkpoints and count faults.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import parse_qs, urlparse

from durably import hookimpl
from durably.storage import FileStorage, Storage, TransientStorageError
from durably_faults import ledger

SCHEME = "faulty+file"
FAULT_KINDS = ("before", "after", "slow")


def faulty_url(
    root: str,
    *,
    seed: int,
    before: float = 0.0,
    after: float = 0.0,
    slow: float = 0.0,
    slow_seconds: float = 1.0,
) -> str:
    """The URL of a faulty storage over the folder ``root`` (probabilities per write)."""
    return (
        f"{SCHEME}://{root}?seed={seed}&before={before}&after={after}&slow={slow}&slow_seconds={slow_seconds}"
    )


def write_log_path(root: str) -> str:
    """Where the storage over ``root`` logs its writes and faults."""
    return root.rstrip("/") + ".writes"


class FaultyStorage:
    """Wraps a FileStorage; reads pass through, writes draw faults from the URL's probabilities."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != SCHEME:
            raise ValueError(f"FaultyStorage takes {SCHEME}:// URLs, not {url!r}")
        options = {name: values[-1] for name, values in parse_qs(parsed.query).items()}
        unknown = set(options) - {"seed", "slow_seconds", *FAULT_KINDS}
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} in {url!r}; known: seed, slow_seconds, "
                f"{', '.join(FAULT_KINDS)}"
            )
        self.url = url
        self.seed = int(options.get("seed", "0"))
        self.probability = {kind: float(options.get(kind, "0")) for kind in FAULT_KINDS}
        self.slow_seconds = float(options.get("slow_seconds", "1"))
        self.inner = FileStorage(f"file://{parsed.path}")
        self.log = write_log_path(parsed.path)
        self._draws: dict[str, int] = {}
        self._scripted: list[tuple[str, str]] = []  # (kind, key prefix), one per fault to give
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[FaultyStorage], tuple[str]]:
        return (FaultyStorage, (self.url,))

    def inject(self, kind: str, prefix: str, *, times: int = 1) -> None:
        """Give the next ``times`` writes of keys under ``prefix`` the fault ``kind`` (in this process),
        whatever the probabilities draw: for tests that need one fault at one write."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._scripted.extend([(kind, prefix)] * times)

    def _fault(self, operation: str, key: str) -> str | None:
        """The fault this write gets, drawn from the seed, the key, and the process (so that a fault
        stays transient: the next process to write the key draws again)."""
        with self._lock:
            for index, (scripted, prefix) in enumerate(self._scripted):
                if key == prefix or key.startswith(f"{prefix}/"):
                    del self._scripted[index]
                    return scripted
            draw = self._draws.get(key, 0)
            self._draws[key] = draw + 1
        digest = hashlib.blake2b(
            f"{self.seed}/{os.getpid()}/{operation}/{key}/{draw}".encode(), digest_size=8
        ).digest()
        roll = random.Random(digest).random()
        for kind in FAULT_KINDS:
            if roll < self.probability[kind]:
                return kind
            roll -= self.probability[kind]
        return None

    def _write(self, operation: str, key: str, data: bytes, write: Callable[[], bool]) -> bool:
        fault = self._fault(operation, key)
        digest = hashlib.blake2b(data, digest_size=8).hexdigest()
        if fault is not None:
            ledger.append(self.log, event="fault", kind=fault, op=operation, key=key)
        if fault == "before":
            raise TransientStorageError(f"injected fault: {operation} of {key!r} refused before writing")
        if fault == "slow":
            time.sleep(self.slow_seconds)
        created = write()
        ledger.append(self.log, event="write", op=operation, key=key, created=created, data=digest)
        if fault == "after":
            raise TransientStorageError(f"injected fault: {operation} of {key!r} written, answer lost")
        return created

    def put(self, key: str, data: bytes) -> None:
        def write() -> bool:
            self.inner.put(key, data)
            return True

        self._write("put", key, data, write)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._write("put_if_absent", key, data, lambda: self.inner.put_if_absent(key, data))

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)


@hookimpl
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    return {SCHEME: FaultyStorage}
