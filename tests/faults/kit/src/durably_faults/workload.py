"""The workload: a few hundred steps (chain, fan-out, a continuation loop, a caught error, a sleep).

Every attempt of every step appends one line to the run's ledger before it returns: its name, a
fresh attempt id, its pid, its deterministic value ``v`` and the attempt ids of the outputs it
consumed. Every output is ``{"v": value, "a": attempt id}``, so the value is known in advance
(:func:`expected_answer`) and the attempt id shows which execution's result a consumer saw.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from durably import workflow
from durably_faults import ledger

CHAIN = 40
FAN = 200
LOOP = 60
CAUGHT = 7
#: How long each step works: long enough for the nemesis to catch steps in flight. The local
#: executor runs the fan-out on many threads at once, so its runs set a longer time.
STEP_SECONDS_ENV = "DURABLY_FAULTS_STEP_SECONDS"
#: Steps that append to the ledger: the chain, the fan-out and its fan-in, the loop's 61 steps,
#: ``refuse``, ``judge`` and ``total``. The workflow has ended only after each had an attempt.
STEPS = CHAIN + FAN + 1 + (LOOP + 1) + 3


def _attempt(path: str, name: str, value: int, consumed: dict[str, str]) -> dict[str, Any]:
    attempt = uuid.uuid4().hex[:12]
    ledger.append(path, step=name, attempt=attempt, v=value, consumed=consumed)
    time.sleep(float(os.environ.get(STEP_SECONDS_ENV, "0.02")))
    return {"v": value, "a": attempt}


@workflow.step
def link(path: str, name: str, previous: dict[str, Any] | None, index: int) -> dict[str, Any]:
    base = 0 if previous is None else previous["v"]
    consumed = {} if previous is None else {f"c{index - 1:03d}": previous["a"]}
    return _attempt(path, name, base + index, consumed)


@workflow.step
def square(path: str, name: str, index: int) -> dict[str, Any]:
    return _attempt(path, name, index * index, {})


@workflow.step
def gather(path: str, name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    consumed = {f"f{index:03d}": part["a"] for index, part in enumerate(parts)}
    return _attempt(path, name, sum(part["v"] for part in parts), consumed)


@workflow.step
def countdown(path: str, n: int, total: int) -> Any:
    """Adds n, n-1, ..., 1 one continuation at a time; the last one returns the sum."""
    name = f"l{n:03d}"
    result = _attempt(path, name, total + n, {})
    if n == 0:
        return result
    return countdown.options(name=f"l{n - 1:03d}").step(path, n - 1, total + n)


@workflow.step(max_retries=0, catch_exceptions=True)
def refuse(path: str) -> int:
    _attempt(path, "refuse", 0, {})
    raise ValueError("refused on purpose")


@workflow.step
def judge(path: str, caught: tuple[Any, BaseException | None]) -> dict[str, Any]:
    value = CAUGHT if caught[0] is None and isinstance(caught[1], ValueError) else -1
    return _attempt(path, "judge", value, {})


@workflow.step
def total(
    path: str,
    chain: dict[str, Any],
    fan: dict[str, Any],
    loop: dict[str, Any],
    judged: dict[str, Any],
    slept: None,
) -> dict[str, Any]:
    parts = {f"c{CHAIN - 1:03d}": chain, "gather": fan, "l000": loop, "judge": judged}
    consumed = {name: part["a"] for name, part in parts.items()}
    return _attempt(path, "total", sum(part["v"] for part in parts.values()), consumed)


def build(path: str) -> Any:
    """The workflow's root step future; ``path`` is the ledger every attempt appends to."""
    chain = None
    for index in range(CHAIN):
        name = f"c{index:03d}"
        chain = link.options(name=name).step(path, name, chain, index)
    parts = [square.options(name=f"f{i:03d}").step(path, f"f{i:03d}", i) for i in range(FAN)]
    fan = gather.options(name="gather").step(path, "gather", parts)
    loop = countdown.options(name=f"l{LOOP:03d}").step(path, LOOP, 0)
    judged = judge.options(name="judge").step(path, refuse.options(name="refuse").step(path))
    return total.options(name="total").step(path, chain, fan, loop, judged, workflow.sleep(0.5))


def expected_answer() -> int:
    """The ``v`` of the workflow's output when every step ran as written."""
    chain = sum(range(CHAIN))
    fan = sum(index * index for index in range(FAN))
    loop = sum(range(LOOP + 1))
    return chain + fan + loop + CAUGHT


def attempted(lines: list[dict[str, Any]]) -> int:
    """How many of the workload's steps have had an attempt, from the ledger's lines."""
    return len({line["step"] for line in lines})


def step_names() -> list[str]:
    """Every step of the workload whose output ``workflow.get_output(id, name=...)`` loads.

    The loop's steps between the first and the last returned a continuation: their output is
    the last one's, and durably records no name for them (only for dynamic steps with an output).
    """
    return [
        *(f"c{i:03d}" for i in range(CHAIN)),
        *(f"f{i:03d}" for i in range(FAN)),
        "gather",
        f"l{LOOP:03d}",
        "l000",
        "refuse",
        "judge",
        "total",
    ]
