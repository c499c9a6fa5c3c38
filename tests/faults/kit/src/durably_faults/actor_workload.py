"""The virtual-actor scenario: callers in several processes each make numbered calls on one counter.

``python -m durably_faults.actor_workload STORAGE ACTOR_ID CALLER CALLS RUN_DIR`` makes the calls
``CALLER-0`` .. ``CALLER-(CALLS-1)`` in order, each with its own call id, and appends every
result to ``RUN_DIR/callers``. Killed and started again, it resumes after its last recorded
result, re-sending the call that was in flight under the same call id (a retry, not a new call).
"""

from __future__ import annotations

import sys
from pathlib import Path

from durably import workflow
from durably_faults import ledger


@workflow.virtual_actor
class Counter:
    def __init__(self) -> None:
        self.count = 0

    def incr(self, path: str, call: str) -> int:
        self.count += 1
        ledger.append(path, step="incr", call=call, v=self.count)
        return self.count

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.count


def main(storage: str, actor_id: str, caller: str, calls: int, run_dir: str) -> None:
    workflow.init(storage=storage, executor="local")
    callers = Path(run_dir, "callers")
    done = {record["call"] for record in ledger.read(callers) if record.get("caller") == caller}
    counter = Counter.get_or_create(actor_id)  # type: ignore[attr-defined]
    for index in range(calls):
        call = f"{caller}-{index}"
        if call in done:
            continue
        result = counter.incr.options(call_id=call).run(str(Path(run_dir, "ledger")), call)
        ledger.append(callers, event="output", caller=caller, call=call, output=result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
