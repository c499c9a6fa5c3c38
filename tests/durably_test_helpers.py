"""Helpers for tests: counting how often a step ran (across processes) and running child drivers."""

from __future__ import annotations

import os
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
