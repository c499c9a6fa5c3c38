"""Helpers for tests: counting how often a step ran (across processes) and running child drivers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent


def count_runs(folder: Path, name: str) -> int:
    """How many times a step that calls ``record_run(folder, name)`` has run."""
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def record_run(folder: str | Path, name: str) -> None:
    with open(Path(folder) / name, "a") as handle:
        handle.write("x\n")


def kill_process_tree(root: int) -> None:
    """SIGKILL a process and every process below it (Linux /proc), the caller last if it is one.

    A driver that started its own Ray is the root of that cluster (GCS, raylet, and the workers and
    engine actor below the raylet): killing the tree is the whole cluster dying at one instant.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    me = os.getpid()
    for pid in [pid for pid in tree if pid != me] + ([me] if me in tree else []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_child(
    script: str, *, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a fresh interpreter; returns its completed process (output captured)."""
    source = textwrap.dedent(script)
    env = dict(env or {})
    search_path = [env.pop("PYTHONPATH", ""), str(TESTS), os.environ.get("PYTHONPATH", "")]
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(part for part in search_path if part)}
    return subprocess.run(
        [sys.executable, "-c", source],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
