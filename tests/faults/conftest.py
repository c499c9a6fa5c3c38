"""Options of the fault-injection suite, the seeds each test runs, and the table printed at the end.

``--faults-runs N`` runs seeds 0..N-1 of the workload (the full session); without it, only the
seeded fraction marked ``faults_smoke`` is collected. ``--seed N`` replays one seed (of the
workload and of the actor scenario).
"""

from __future__ import annotations

from typing import Any

import pytest
from durably_faults.checker import Verdict
from durably_faults.report import table

#: The fraction CI runs: one seed of each kind of workload run, one actor run.
SMOKE_SEEDS = (0, 1, 2)
SMOKE_ACTOR_SEEDS = (0,)

_verdicts: list[Verdict] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faults", "durably fault-injection suite")
    group.addoption("--faults-runs", type=int, default=None, help="run workload seeds 0..N-1 (full session)")
    group.addoption("--faults-actor-runs", type=int, default=None, help="run actor-scenario seeds 0..N-1")
    group.addoption("--seed", type=int, default=None, help="replay one seed (workload and actor scenario)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults_smoke: the seeded fraction of the fault suite that CI runs")


def _seeds(config: pytest.Config, option: str, smoke: tuple[int, ...]) -> list[Any]:
    replay = config.getoption("--seed")
    if replay is not None:
        return [replay]
    runs = config.getoption(option)
    if runs is None:
        return [pytest.param(seed, marks=pytest.mark.faults_smoke) for seed in smoke]
    return [
        pytest.param(seed, marks=[pytest.mark.faults_smoke] if seed in smoke else []) for seed in range(runs)
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", _seeds(metafunc.config, "--faults-runs", SMOKE_SEEDS))
    if "actor_seed" in metafunc.fixturenames:
        metafunc.parametrize("actor_seed", _seeds(metafunc.config, "--faults-actor-runs", SMOKE_ACTOR_SEEDS))


@pytest.fixture
def verdicts() -> list[Verdict]:
    """Where each test leaves its run's verdict for the table."""
    return _verdicts


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _verdicts:
        terminalreporter.write_line("")
        for line in table(_verdicts).splitlines():
            terminalreporter.write_line(line)
