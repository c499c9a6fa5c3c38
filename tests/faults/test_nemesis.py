"""The nemesis's plans: every planned fault falls due while the workload still runs, however slow."""

from __future__ import annotations

import pytest
from durably_faults import workload
from durably_faults.nemesis import Plan

pytestmark = pytest.mark.faults_smoke

#: The seeds of the full session (noxfile.FAULTS_FULL).
FULL_SESSION_SEEDS = range(60)


def test_every_planned_fault_is_due_before_the_workload_can_end() -> None:
    # A fault is due at a count of steps attempted; the workflow ends only after all STEPS were.
    late = [
        (seed, threshold, action)
        for seed in FULL_SESSION_SEEDS
        for threshold, action in Plan.from_seed(seed).schedule
        if threshold >= workload.STEPS
    ]
    assert late == []


def test_a_plans_faults_fall_due_at_distinct_points_of_progress() -> None:
    # One fault lands per point, so two faults due at once would be one kill counted twice.
    for seed in FULL_SESSION_SEEDS:
        thresholds = [threshold for threshold, _ in Plan.from_seed(seed).schedule]
        assert thresholds == sorted(set(thresholds)), f"seed {seed}: {thresholds}"


def test_the_full_session_plans_at_least_100_kills() -> None:
    kills = sum(
        count
        for seed in FULL_SESSION_SEEDS
        for action, count in Plan.from_seed(seed).planned().items()
        if action.startswith("kill-")
    )
    assert kills >= 100
