"""The predecessor: `ray.workflow` from ray 2.47, written against its 2.x API; runs in its own venv."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import ray
from _harness import (
    MANY_CHAIN,
    Implementation,
    Measured,
    descendant_pids,
    init_ray,
    latency_figures,
    main,
    many_figures,
    ray_finish_times,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the import warns that the library is deprecated
    from ray import workflow


@ray.remote
def inc(x: int) -> int:
    return x + 1


@ray.remote
def gather(*values: int) -> int:
    return sum(values)


@ray.remote
def loop(i: int, n: int) -> Any:
    return i if i >= n else workflow.continuation(loop.bind(i + 1, n))


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


@ray.remote
def fib(n: int) -> Any:
    return n if n <= 1 else workflow.continuation(add.bind(fib.bind(n - 1), fib.bind(n - 2)))


@ray.remote
def stamp(_: int) -> float:
    return time.time()


class RayWorkflow(Implementation):
    def version(self) -> str:
        return f"ray.workflow {ray.__version__}"

    def start(self, storage_url: str) -> None:
        # ray.workflow 2.x walks the DAG recursively: a chain N deep needs a few frames per step.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
        logging.getLogger("ray.workflow").setLevel(logging.WARNING)
        warnings.simplefilter("ignore")
        # ray 2.x keeps workflow state in the cluster's storage, which ray.init sets.
        init_ray(ray, storage=storage_url.removeprefix("file://"))

    def stop(self) -> None:
        ray.shutdown()

    def engine_pids(self) -> list[int]:
        # ray.workflow 2.x runs every workflow's executor inside its management actor.
        return descendant_pids("ray::WorkflowManagementActor")

    def run_chain(self, n: int, run_id: str) -> int:
        dag = inc.bind(0)
        for _ in range(n - 1):
            dag = inc.bind(dag)
        return int(workflow.run(dag, workflow_id=run_id))

    def run_fanout(self, n: int, run_id: str) -> int:
        return int(workflow.run(gather.bind(*[inc.bind(i) for i in range(n)]), workflow_id=run_id))

    def run_loop(self, n: int, run_id: str) -> int:
        return int(workflow.run(loop.bind(1, n), workflow_id=run_id))

    def run_fib(self, n: int, run_id: str) -> int:
        return int(workflow.run(fib.bind(n), workflow_id=run_id))

    def run_many(self, n: int, run_id: str) -> Measured:
        submitted: list[float] = []
        refs: list[Any] = []
        for index in range(n):
            submitted.append(time.perf_counter())
            dag = inc.bind(0)
            for _ in range(MANY_CHAIN - 1):
                dag = inc.bind(dag)
            refs.append(workflow.run_async(dag, workflow_id=f"{run_id}-{index}"))
        values, finished = ray_finish_times(ray, refs)
        return Measured(sum(values), many_figures(submitted, finished))

    def run_latency(self, n: int, run_id: str) -> Measured:
        first_step: list[float] = []
        end_to_end: list[float] = []
        for index in range(n):
            wall, started = time.time(), time.perf_counter()
            body_started = workflow.run(stamp.bind(index), workflow_id=f"{run_id}-{index}")
            end_to_end.append(time.perf_counter() - started)
            first_step.append(body_started - wall)
        return Measured(n, {**latency_figures("first_step_", first_step), **latency_figures("", end_to_end)})


if __name__ == "__main__":
    main(lambda args: RayWorkflow())
