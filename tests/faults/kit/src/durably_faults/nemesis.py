"""The nemesis: a seeded plan of faults for one run, and the process-level faults it injects.

A plan fixes, from its seed alone, the executor, the storage faults (as probabilities in the
storage URL) and a schedule of process faults: SIGKILL of the driver, of a Ray worker running a
step, of the engine actor; SIGSTOP of a driver past its lease (SIGCONT later); a second driver
racing the first. The schedule is set in workload progress (how many of the workload's steps
have had an attempt), not in seconds: on a loaded machine a run is slower, and faults timed in
seconds landed after it had ended (63 runs landed 83 kills); every threshold is below the
workload's step count, so the workflow cannot end before its faults are due. Processes are
found by pid, and only among the processes of the run's own drivers and of the test's own Ray
cluster (descendants of its head process), never by name.
"""

from __future__ import annotations

import collections
import os
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path

from durably_faults import workload

#: The lease period of drivers in runs with a pause (see driver.py), and how long a pause lasts.
LEASE_SECONDS = 3.0
PAUSE_SECONDS = LEASE_SECONDS * 2
#: A paused driver is woken up once a racer drives in its place, or after this long.
MAX_PAUSE_SECONDS = 90.0

KINDS = ("ray-kills", "local-pauses", "storage")


@dataclass
class Plan:
    """What one run does; everything follows from ``seed``."""

    seed: int
    kind: str
    executor: str
    storage_faults: dict[str, float] = field(default_factory=dict)
    #: (steps of the workload that have had an attempt, action), the thresholds distinct and ascending
    schedule: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def from_seed(cls, seed: int) -> Plan:
        rng = random.Random(seed)
        kind = KINDS[seed % len(KINDS)]
        if kind == "ray-kills":
            actions = ["kill-driver", "kill-worker", "kill-worker", "kill-engine", "race-driver"]
            chosen = rng.sample(actions, k=rng.randint(3, 4))
            return cls(seed, kind, "ray", schedule=_progress(rng, chosen))
        if kind == "local-pauses":
            chosen = ["pause-driver", rng.choice(["kill-driver", "race-driver"]), "kill-driver"]
            return cls(seed, kind, "local", schedule=_progress(rng, chosen))
        faults = {
            "before": round(rng.uniform(0.005, 0.03), 4),
            "after": round(rng.uniform(0.005, 0.03), 4),
            "slow": round(rng.uniform(0.005, 0.02), 4),
        }
        executor = ("ray", "local")[(seed // len(KINDS)) % 2]
        return cls(seed, kind, executor, faults, _progress(rng, ["kill-driver"]))

    def planned(self) -> collections.Counter[str]:
        """How many faults of each kind the schedule holds (the table sets what landed beside it)."""
        return collections.Counter(action for _, action in self.schedule)


#: Faults are due between these counts of workload steps attempted (of ``workload.STEPS``).
FIRST_FAULT_AT = 3
LAST_FAULT_AT = workload.STEPS - 20


def _progress(rng: random.Random, actions: list[str]) -> list[tuple[int, str]]:
    thresholds = sorted(rng.sample(range(FIRST_FAULT_AT, LAST_FAULT_AT), k=len(actions)))
    return list(zip(thresholds, actions, strict=True))


@dataclass
class ActorPlan:
    """The virtual-actor scenario: slow and failing writes, and callers killed at points of progress."""

    seed: int
    storage_faults: dict[str, float]
    #: How many calls (of all callers) have their answer when each kill is due, ascending.
    kills: list[int]

    @classmethod
    def from_seed(cls, seed: int, calls: int) -> ActorPlan:
        """The plan of a run of ``calls`` calls in all; every kill is due before the last answer."""
        rng = random.Random(seed)
        faults = {"before": 0.01, "after": 0.01, "slow": round(rng.uniform(0.01, 0.03), 4)}
        return cls(seed, faults, sorted(rng.sample(range(1, calls - 1), k=rng.randint(2, 4))))


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` in the process tree (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def process_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def engine_actor_pids(cluster_root: int) -> list[int]:
    """The engine actor's process in the cluster below ``cluster_root`` (Ray titles it ray::EngineActor)."""
    return [pid for pid in descendants(cluster_root) if process_title(pid).startswith("ray::EngineActor")]


def send(pid: int, sig: signal.Signals) -> bool:
    """Signal ``pid``; False when it is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
