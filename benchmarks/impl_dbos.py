"""A durable-execution peer without Ray: DBOS, steps inside one workflow, SQLite as its system database."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
from importlib.metadata import version as distribution_version

from _harness import Implementation, main
from dbos import DBOS, SetWorkflowID


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


if __name__ == "__main__":
    main(lambda args: Dbos())
