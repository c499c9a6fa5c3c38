"""A durable-execution peer without Ray: DBOS, steps inside one workflow, SQLite as its system database."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
import time
from importlib.metadata import version as distribution_version

from _harness import MANY_CHAIN, Implementation, Measured, latency_figures, main, many_figures
from dbos import DBOS, SetWorkflowID

# The queue's dispatcher polls SQLite; its default (1 s) would dominate the latency of a 3-step
# workflow, so it polls every 10 ms.
QUEUE_POLLING_SECONDS = 0.01


@DBOS.step()
def inc(x: int) -> int:
    return x + 1


@DBOS.step()
def gather(*values: int) -> int:
    return sum(values)


@DBOS.workflow()
def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = inc(value)
    return value


@DBOS.workflow()
def fanout(n: int) -> int:
    # A DBOS workflow runs its steps one after another; the N steps are independent of each other,
    # and one last step gathers them, as in the Ray versions.
    return int(gather(*[inc(i) for i in range(n)]))


@DBOS.step()
def stamp(_: int) -> float:
    return time.time()


@DBOS.workflow()
def first_step_time(index: int) -> float:
    return float(stamp(index))


class Dbos(Implementation):
    def version(self) -> str:
        return f"dbos {distribution_version('dbos')}"

    def start(self, storage_url: str) -> None:
        folder = storage_url.removeprefix("file://")
        os.makedirs(folder, exist_ok=True)
        DBOS(
            config={
                "name": "durably-bench",
                "system_database_url": f"sqlite:///{os.path.join(folder, 'dbos.sqlite')}",
                "run_admin_server": False,
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        self.queue = DBOS.register_queue("durably-bench-many", polling_interval_sec=QUEUE_POLLING_SECONDS)

    def stop(self) -> None:
        DBOS.destroy()

    def run_chain(self, n: int, run_id: str) -> int:
        with SetWorkflowID(run_id):
            return int(chain(n))

    def run_fanout(self, n: int, run_id: str) -> int:
        with SetWorkflowID(run_id):
            return int(fanout(n))

    # DBOS has no dynamic workflows: its natural loop is a loop of steps in one workflow, as in chain.
    run_loop = run_chain

    def engine_pids(self) -> list[int]:
        return [os.getpid()]  # DBOS runs workflows in the process that launched it

    def run_many(self, n: int, run_id: str) -> Measured:
        submitted: list[float] = []
        handles = []
        for index in range(n):
            submitted.append(time.time())
            with SetWorkflowID(f"{run_id}-{index}"):
                handles.append(self.queue.enqueue(chain, MANY_CHAIN))
        total = sum(int(handle.get_result(polling_interval_sec=QUEUE_POLLING_SECONDS)) for handle in handles)
        # Results are collected in order, so the time each was seen is not when it finished: DBOS's
        # own record says when each completed (wall clock, ms; its created_at has whole seconds on
        # SQLite before Python 3.12, so the enqueue time is read here).
        finished = [handle.get_status().completed_at / 1000 for handle in handles]
        return Measured(total, many_figures(submitted, finished))

    def run_latency(self, n: int, run_id: str) -> Measured:
        first_step: list[float] = []
        end_to_end: list[float] = []
        for index in range(n):
            wall, started = time.time(), time.perf_counter()
            with SetWorkflowID(f"{run_id}-{index}"):
                body_started = first_step_time(index)
            end_to_end.append(time.perf_counter() - started)
            first_step.append(body_started - wall)
        return Measured(n, {**latency_figures("first_step_", first_step), **latency_figures("", end_to_end)})


if __name__ == "__main__":
    main(lambda args: Dbos())
