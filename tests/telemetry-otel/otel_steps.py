"""Steps and actors the telemetry tests run; pickled by value, so Ray workers need not import the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry import trace

from durably import workflow


@workflow.step
def double(value: int) -> int:
    return 2 * value


@workflow.step(max_retries=0)
def explode(message: str) -> int:
    raise ValueError(message)


@workflow.step(max_retries=3, retry_delay=0.01, max_retry_delay=0.01)
def flaky(folder: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (counted in a file, so across processes), then returns."""
    path = Path(folder) / "flaky-attempts"
    with path.open("a") as file:
        file.write("x\n")
    if len(path.read_text().splitlines()) <= failures:
        raise ConnectionError("transient")
    return "ok"


@workflow.step
def traced_inside() -> str:
    """Opens a span of its own, as application code inside a step would."""
    with trace.get_tracer("application").start_as_current_span("inside the step"):
        return "traced"


@workflow.step
def countdown(n: int) -> Any:
    """Returns a sub-workflow (a continuation) until n reaches 0."""
    return n if n == 0 else countdown.step(n - 1)


@workflow.virtual_actor
class Counter:
    def __init__(self) -> None:
        self.count = 0

    def add(self, amount: int) -> int:
        if amount < 0:
            raise ValueError("cannot add a negative amount")
        self.count += amount
        return self.count

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.count
