"""How long `durably list --limit 50` takes on a storage holding many workflows.

Writes the workflow records directly through the store (no workflow runs), then times the
Inspector's first page, filtered pages, the counts by status, and the CLI itself:

    python benchmarks/list_many.py /var/tmp/durably-100k --count 100000

A storage filled by a version before the status index has no index: ``--rebuild`` builds it
first (timed), so the same storage gives the figures before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

from durably import workflow
from durably._graph import flatten
from durably._resolve import open_storage
from durably._store import WorkflowStore
from durably.inspect import Inspector

STATUSES = ("SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "FAILED", "CANCELED")


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


def fill(url: str, count: int) -> None:
    """Store ``count`` finished workflows of two steps each (skipping those already there)."""
    storage = open_storage(url)
    existing = sum(1 for _ in storage.list("index"))
    graph = flatten(add.step(1, add.step(2, 3)))
    started = time.perf_counter()
    for number in range(existing, count):
        store = WorkflowStore(storage, f"wf-{number:08d}")
        store.create(graph, {"n": number})
        now = time.time()
        store.save_status(STATUSES[number % len(STATUSES)], epoch=0, started_at=now, ended_at=now)
        if number % 10_000 == 0:
            print(f"  {number} stored ({time.perf_counter() - started:.0f} s)", flush=True)


def _cpu() -> float:
    """CPU seconds of this process and of the commands it ran (steadier than wall time)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, action: object) -> None:
    """Wall time, and CPU time of this process and its commands."""
    started, cpu = time.perf_counter(), _cpu()
    action()  # type: ignore[operator]
    wall, used = time.perf_counter() - started, _cpu() - cpu
    print(f"{label}: {wall:.3f} s wall, {used:.3f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("storage")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true", help="build the status index first (timed)")
    args = parser.parse_args()
    fill(args.storage, args.count)
    inspector = Inspector(args.storage)
    if args.rebuild:
        timed("Inspector.rebuild_status_index()", inspector.rebuild_status_index)
    built = getattr(inspector, "status_index_built", lambda: False)()
    print(f"status index built: {built}")
    timed("Inspector.list_workflows(limit=50)", lambda: inspector.list_workflows(limit=50))
    timed(
        "Inspector.list_workflows(limit=50, status=['CANCELED'])",
        lambda: inspector.list_workflows(limit=50, status=["CANCELED"]),
    )
    timed(
        "Inspector.list_workflows(limit=50, status=['FAILED'])",
        lambda: inspector.list_workflows(limit=50, status=["FAILED"]),
    )
    # A status few workflows have is the worst case of a filter that reads what it skips.
    timed(
        "Inspector.list_workflows(limit=50, status=['PENDING']) (none stored)",
        lambda: inspector.list_workflows(limit=50, status=["PENDING"]),
    )
    timed(
        "Inspector.list_workflows(limit=50, prefix='wf-0005')",
        lambda: inspector.list_workflows(prefix="wf-0005"),
    )
    timed("Inspector.count_by_status()", inspector.count_by_status)
    command = [sys.executable, "-m", "durably.cli", "list", "--limit", "50", "--storage", args.storage]
    env = {**os.environ, "COLUMNS": "120"}
    for extra in ([], ["--status", "FAILED"], ["--status", "PENDING"]):
        timed(
            f"durably list {' '.join([*extra, '--limit', '50'])} (whole command, interpreter start included)",
            lambda extra=extra: subprocess.run(
                [*command, *extra], check=True, stdout=subprocess.DEVNULL, env=env
            ),
        )


if __name__ == "__main__":
    main()
