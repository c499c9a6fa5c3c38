"""The supervisor: runs a plan's drivers, injects its process faults on time, resumes until the end.

It starts one driver, then, whenever no driver is left running, resumes the workflow in a new
driver process, until the workflow is SUCCESSFUL and some caller holds its output, or a bound on
drivers or time is reached. The statuses it observed and the faults it injected go into the
:class:`RunRecord` the checker and the table read.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from durably import workflow
from durably_faults import ledger, nemesis, workload
from durably_faults.faulty_storage import faulty_url


@dataclass
class Cluster:
    """How child drivers reach the test's Ray cluster, and the pid below which its processes live."""

    env: dict[str, str]
    root_pid: int


@dataclass
class RunRecord:
    seed: int
    kind: str
    run_dir: Path
    storage_root: str
    workflow_id: str
    #: Faults that landed (found a process to hit), by kind; ``planned`` is what the plan held.
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    planned: collections.Counter[str] = field(default_factory=collections.Counter)
    drivers: int = 0
    statuses: list[str] = field(default_factory=list)
    gave_up: str | None = None


@dataclass
class Paused:
    """A driver stopped past its lease, woken up once the racer started after it drives (or later)."""

    driver: subprocess.Popen[bytes]
    racer: subprocess.Popen[bytes]
    deadline: float

    def racer_took_over(self, run_dir: Path) -> bool:
        """The racer ran a step (a local driver runs steps itself), or it has already ended."""
        if self.racer.poll() is not None:
            return True
        return any(line["pid"] == self.racer.pid for line in ledger.read(run_dir / "ledger"))


def _spawn(arguments: list[str], run_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(run_dir / "drivers.log", "ab")  # noqa: SIM115 - the child holds it; closed when we exit
    return subprocess.Popen(
        [sys.executable, *arguments], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def _status(workflow_id: str) -> str:
    try:
        return workflow.get_status(workflow_id).value
    except workflow.WorkflowNotFoundError:
        return "NONE"
    except Exception as exc:  # a status that cannot be read is itself a finding
        return f"UNREADABLE {type(exc).__name__}: {exc}"[:200]


def run_plan(
    plan: nemesis.Plan,
    run_dir: Path,
    cluster: Cluster | None,
    *,
    max_drivers: int = 12,
    budget_seconds: float = 480.0,
) -> RunRecord:
    """Drive the workload under ``plan`` until it ends (or the bounds are hit); the checker reads the rest."""
    run_dir.mkdir(parents=True, exist_ok=True)
    root = str(run_dir / "storage")
    url = faulty_url(root, seed=plan.seed, **plan.storage_faults)
    record = RunRecord(plan.seed, plan.kind, run_dir, root, f"faults-{plan.seed}")
    workflow.init(storage=root, executor="local")  # plain file:// reads of the same data, no faults
    env = dict(cluster.env if cluster else {**os.environ, "RAY_ADDRESS": ""})
    if plan.executor == "local":
        env[workload.STEP_SECONDS_ENV] = "0.1"
    if plan.kind == "local-pauses":
        env["DURABLY_FAULTS_LEASE_SECONDS"] = str(nemesis.LEASE_SECONDS)
    if plan.executor == "ray" and cluster is None:
        raise ValueError(f"plan {plan.seed} runs on Ray: give run_plan the test's Ray cluster")

    def driver(mode: str) -> subprocess.Popen[bytes]:
        record.drivers += 1
        arguments = [
            "-m",
            "durably_faults.driver",
            url,
            plan.executor,
            record.workflow_id,
            str(run_dir),
            mode,
        ]
        return _spawn(arguments, run_dir, env)

    started = time.monotonic()
    drivers = [driver("run")]
    paused: list[Paused] = []
    schedule = list(plan.schedule)
    record.planned.update(plan.planned())
    # A fault is due once enough of the workload's steps have had an attempt (nemesis.Plan), so
    # a slow machine delays the faults with the run instead of letting the run end first. One
    # lands per new ledger line at most (two thresholds crossed at once must not both hit the
    # same dying driver), and one that finds nothing to hit stays due.
    landed_at = -1
    finished = False
    while True:
        elapsed = time.monotonic() - started
        lines = ledger.read(run_dir / "ledger")
        # While a driver is paused the schedule holds, so the racer is not hit before it takes over.
        if (
            not paused
            and not finished
            and schedule
            and schedule[0][0] <= workload.attempted(lines)
            and len(lines) > landed_at
        ):
            action = schedule[0][1]
            if _inject(action, drivers, paused, run_dir, cluster, driver):
                schedule.pop(0)
                record.faults[action] += 1
                landed_at = len(lines)
        for pause in list(paused):
            if pause.racer_took_over(run_dir) or time.monotonic() > pause.deadline:
                nemesis.send(pause.driver.pid, signal.SIGCONT)
                paused.remove(pause)
        running = [process for process in drivers if process.poll() is None]
        if paused or running:
            time.sleep(0.2)
            continue
        status = _status(record.workflow_id)
        if not record.statuses or record.statuses[-1] != status:
            record.statuses.append(status)
        finished = status == "SUCCESSFUL"
        answered = any(line.get("event") == "output" for line in ledger.read(run_dir / "callers"))
        if finished and answered:
            break
        if record.drivers >= max_drivers or elapsed > budget_seconds:
            record.gave_up = f"{status} after {record.drivers} drivers and {elapsed:.0f} s"
            break
        if drivers[-1].returncode not in (None, 0, -signal.SIGKILL):
            time.sleep(1.0)  # it failed (say, "already running" while the dead driver's lease lapses)
        # A driver killed before it created the workflow leaves nothing to resume: run it again.
        drivers.append(driver("run" if status == "NONE" else "resume"))
    _count_storage_faults(record)
    return record


def _inject(
    action: str,
    drivers: list[subprocess.Popen[bytes]],
    paused: list[Paused],
    run_dir: Path,
    cluster: Cluster | None,
    driver: Callable[[str], subprocess.Popen[bytes]],
) -> bool:
    """Apply one scheduled fault; False when it found nothing to hit (the table counts applied ones)."""
    live = [process for process in drivers if process.poll() is None]
    if action == "kill-driver":
        return bool(live) and nemesis.send(live[-1].pid, signal.SIGKILL)
    if action == "race-driver":
        drivers.append(driver("resume"))
        return True
    if action == "pause-driver":
        if not live:
            return False
        nemesis.send(live[-1].pid, signal.SIGSTOP)
        time.sleep(nemesis.PAUSE_SECONDS)  # past its lease: a racer may take the workflow over
        racer = driver("resume")
        drivers.append(racer)
        paused.append(Paused(live[-1], racer, time.monotonic() + nemesis.MAX_PAUSE_SECONDS))
        return True
    if cluster is None:
        return False
    if action == "kill-engine":
        return any(nemesis.send(pid, signal.SIGKILL) for pid in nemesis.engine_actor_pids(cluster.root_pid))
    if action == "kill-worker":
        in_cluster = nemesis.descendants(cluster.root_pid)
        attempts = [line for line in ledger.read(run_dir / "ledger") if line["pid"] in in_cluster]
        return bool(attempts) and nemesis.send(attempts[-1]["pid"], signal.SIGKILL)
    raise ValueError(f"unknown nemesis action {action!r}")


def _count_storage_faults(record: RunRecord) -> None:
    log = record.storage_root + ".writes"
    for line in ledger.read(log):
        if line.get("event") == "fault":
            record.faults[f"storage-{line['kind']}"] += 1


def run_actor_plan(
    plan: nemesis.ActorPlan,
    run_dir: Path,
    actor_id: str,
    callers: int,
    calls: int,
    *,
    budget_seconds: float = 600.0,
) -> RunRecord:
    """Run ``callers`` caller processes of ``calls`` calls each, killing them at the plan's points of
    progress and starting a killed caller again, until every call has its answer."""
    run_dir.mkdir(parents=True, exist_ok=True)
    root = str(run_dir / "storage")
    url = faulty_url(root, seed=plan.seed, **plan.storage_faults)
    record = RunRecord(plan.seed, "actor", run_dir, root, actor_id)
    env = {**os.environ, "RAY_ADDRESS": ""}
    names = [f"p{index}" for index in range(callers)]

    def caller(name: str) -> subprocess.Popen[bytes]:
        record.drivers += 1
        arguments = ["-m", "durably_faults.actor_workload", url, actor_id, name, str(calls), str(run_dir)]
        return _spawn(arguments, run_dir, env)

    running = {name: caller(name) for name in names}
    kills = list(plan.kills)
    record.planned["kill-caller"] = len(kills)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        answered = collections.Counter(
            line["caller"] for line in ledger.read(run_dir / "callers") if line.get("event") == "output"
        )
        # A kill is due once that many calls have their answer; one with no live caller stays due.
        if kills and kills[0] <= answered.total():
            live = [process for process in running.values() if process.poll() is None]
            if live and nemesis.send(live[kills[0] % len(live)].pid, signal.SIGKILL):
                kills.pop(0)
                record.faults["kill-caller"] += 1
        if all(answered[name] >= calls for name in names):
            break
        if elapsed > budget_seconds:
            record.gave_up = f"{dict(answered)} answers after {elapsed:.0f} s"
            break
        for name, process in running.items():
            if process.poll() is not None and answered[name] < calls:
                running[name] = caller(name)
        time.sleep(0.2)
    for process in running.values():
        process.wait()
    _count_storage_faults(record)
    return record
