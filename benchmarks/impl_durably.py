"""durably itself, through its public Ray 1.x-style API, on the `ray` or the `local` executor."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import argparse
import types
from importlib.metadata import version as distribution_version
from typing import Any

from _harness import FeatureUnavailable, Implementation, main


def _define(workflow: Any) -> types.SimpleNamespace:
    """The workload's steps, defined after durably is imported (a missing feature shows as not available)."""

    @workflow.step
    def inc(x: int) -> int:
        return x + 1

    @workflow.step
    def gather(*values: int) -> int:
        return sum(values)

    @workflow.step
    def loop(i: int, n: int) -> Any:
        return i if i >= n else loop.step(i + 1, n)

    @workflow.step
    def add(a: int, b: int) -> int:
        return a + b

    @workflow.step
    def fib(n: int) -> Any:
        return n if n <= 1 else add.step(fib.step(n - 1), fib.step(n - 2))

    return types.SimpleNamespace(inc=inc, gather=gather, loop=loop, fib=fib)


def _define_counter(workflow: Any) -> Any:
    @workflow.virtual_actor
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> int:
            self.n += 1
            return self.n

    return Counter


class Durably(Implementation):
    # durably grows feature by feature; a missing one shows as "not available" in the table.
    missing_feature_errors = (AttributeError, NotImplementedError, ImportError)

    def __init__(self, executor: str) -> None:
        try:
            from durably import workflow
        except ImportError as error:
            raise FeatureUnavailable(f"durably.workflow does not import: {error}") from error
        self.workflow: Any = workflow
        self.executor = executor
        self.steps = _define(workflow)
        self.uses_ray = executor == "ray"

    def version(self) -> str:
        return f"durably {distribution_version('durably')} ({self.executor} executor)"

    def start(self, storage_url: str) -> None:
        if self.uses_ray:
            import ray

            # Started here with the same options as the other Ray contenders; durably joins it.
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        self.workflow.init(storage=storage_url, executor=self.executor)

    def stop(self) -> None:
        if self.uses_ray:
            import ray

            ray.shutdown()

    def run_chain(self, n: int, run_id: str) -> int:
        output = self.steps.inc.step(0)
        for _ in range(n - 1):
            output = self.steps.inc.step(output)
        return int(output.run(workflow_id=run_id))

    def run_fanout(self, n: int, run_id: str) -> int:
        outputs = [self.steps.inc.step(i) for i in range(n)]
        return int(self.steps.gather.step(*outputs).run(workflow_id=run_id))

    def run_loop(self, n: int, run_id: str) -> int:
        return int(self.steps.loop.step(1, n).run(workflow_id=run_id))

    def run_fib(self, n: int, run_id: str) -> int:
        return int(self.steps.fib.step(n).run(workflow_id=run_id))

    def run_actor(self, n: int, run_id: str) -> int:
        counter = _define_counter(self.workflow).get_or_create(run_id)
        value = 0
        for _ in range(n):
            value = counter.incr.run()
        return int(value)

    # The same chain, on the storage that --storage-url names.
    run_backend = run_chain


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=("ray", "local"), default="ray")


if __name__ == "__main__":
    main(lambda args: Durably(args.executor), _add_arguments)
