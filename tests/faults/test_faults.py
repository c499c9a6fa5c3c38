"""Exactly-once results under every fault: the workload and a virtual actor, driven through a nemesis.

Each test is one seeded run (replay it with ``--seed N``); it fails listing every promise the run
broke. The plans, the faulty storage and the checks are in ``kit/`` (the durably-faults-kit
distribution, installed so that Ray workers and child drivers import it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from durably_faults.checker import Verdict, check_actor_run, check_run
from durably_faults.nemesis import ActorPlan, Plan
from durably_faults.supervisor import Cluster, run_actor_plan, run_plan

ACTOR_CALLERS = 2
ACTOR_CALLS = 200


def _broken(verdict: Verdict) -> str:
    lines = [
        f"seed {verdict.record.seed} ({verdict.record.kind}), faults {dict(verdict.record.faults)}, "
        f"run folder {verdict.record.run_dir}"
    ]
    for check in verdict.failed:
        lines.append(f"  {check}:")
        lines += [f"    {finding}" for finding in verdict.findings[check][:8]]
    return "\n".join(lines)


@pytest.mark.timeout(1200)  # a run's supervisor gives up after 480 s; the checks take a minute
def test_workload_gives_its_answer_once_under_faults(
    seed: int, tmp_path: Path, request: Any, verdicts: list[Verdict]
) -> None:
    plan = Plan.from_seed(seed)
    cluster = None
    if plan.executor == "ray":
        ray_cluster = request.getfixturevalue("ray_cluster")
        cluster = Cluster(env=ray_cluster.env(), root_pid=ray_cluster.nodes[0].pid)
    verdict = check_run(run_plan(plan, tmp_path / f"run-{seed}", cluster))
    verdicts.append(verdict)
    assert not verdict.failed, _broken(verdict)


@pytest.mark.timeout(1200)
def test_virtual_actor_applies_each_call_once_under_faults(
    actor_seed: int, tmp_path: Path, verdicts: list[Verdict]
) -> None:
    plan = ActorPlan.from_seed(actor_seed, ACTOR_CALLERS * ACTOR_CALLS)
    record = run_actor_plan(plan, tmp_path / f"actor-{actor_seed}", "counter", ACTOR_CALLERS, ACTOR_CALLS)
    verdict = check_actor_run(record, "counter", ACTOR_CALLERS, ACTOR_CALLS)
    verdicts.append(verdict)
    assert not verdict.failed, _broken(verdict)
