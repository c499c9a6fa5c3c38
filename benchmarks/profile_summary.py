"""Summarises a `py-spy record --subprocesses -f raw` profile per role: driver, engine actor, step workers.

    py-spy record --subprocesses --nonblocking --rate 25 -f raw -o chain.txt -- \
        python benchmarks/impl_durably.py --workload chain --n 10000 --out /tmp/r.json --executor ray
    python benchmarks/profile_summary.py chain.txt --top 15

A process's role is read from its frames: the one that runs durably's engine (``WorkflowEngine``)
is the engine, one that runs ``execute_step`` is a worker, the root is the driver.
For each role it prints the samples, then the functions holding the most samples, inclusive
(the function or anything it called) and exclusive (the innermost frame).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_PROCESS = re.compile(r"process (\d+):")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _role(frames: set[str], is_root: bool) -> str:
    if is_root:
        return "driver"
    # By function, not by file: every process imports durably's modules.
    if any("WorkflowEngine." in frame or "EngineActor." in frame for frame in frames):
        return "engine"
    if any(frame.startswith("execute_step ") for frame in frames):
        return "worker"
    return "other"


def _short(frame: str) -> str:
    """``run (durably/_engine.py:312)`` -> ``durably/_engine.py:run``."""
    found = _FRAME.match(frame.strip())
    if found is None:
        return frame.strip()
    name, path = found.groups()
    parts = Path(path).parts
    for anchor in ("durably", "ray", "concurrent", "asyncio", "threading.py", "selectors.py"):
        if anchor in parts:
            path = "/".join(parts[parts.index(anchor) :])
            break
    else:
        path = Path(path).name
    return f"{path}:{name}"


def summarise(lines: list[str], top: int) -> str:
    stacks: dict[int, list[tuple[list[str], int]]] = collections.defaultdict(list)
    root: int | None = None
    for line in lines:
        body, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        parts = body.split(";")
        # Without --subprocesses there is no process prefix: every sample is the driver's.
        pids = [int(found.group(1)) for part in parts if (found := _PROCESS.match(part))] or [0]
        root = pids[0] if root is None else root
        frames = [part for part in parts if not part.startswith(("process ", "thread "))]
        stacks[pids[-1]].append((frames, int(count)))
    by_role: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    processes: collections.Counter[str] = collections.Counter()
    for pid, samples in stacks.items():
        role = _role({frame for frames, _ in samples for frame in frames}, pid == root)
        by_role[role] += samples
        processes[role] += 1
    total = sum(count for samples in by_role.values() for _, count in samples) or 1
    out = []
    for role in ("driver", "engine", "worker", "other"):
        samples = by_role.get(role)
        if not samples:
            continue
        count = sum(n for _, n in samples)
        out.append(
            f"\n## {role}: {count} samples ({100 * count / total:.0f}% of all), {processes[role]} process(es)"
        )
        inclusive: collections.Counter[str] = collections.Counter()
        exclusive: collections.Counter[str] = collections.Counter()
        for frames, n in samples:
            for name in {_short(frame) for frame in frames}:
                inclusive[name] += n
            if frames:
                exclusive[_short(frames[-1])] += n
        out.append("inclusive:")
        out += [f"  {100 * n / count:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
        out.append("exclusive:")
        out += [f"  {100 * n / count:5.1f}%  {name}" for name, n in exclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path, help="a py-spy raw (collapsed stacks) file")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.profile.read_text(errors="replace").splitlines(), args.top))


if __name__ == "__main__":
    main()
