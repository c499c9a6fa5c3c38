"""A driver process: ``python -m durably_faults.driver STORAGE EXECUTOR WORKFLOW_ID RUN_DIR run|resume``.

It runs (or resumes) the workload and appends what it got to ``RUN_DIR/callers``: the output, or
the error. A resume that finds another driver still running waits for the output instead (and
resumes again if that driver dies), so every process that asked gets an answer to compare.
``DURABLY_FAULTS_LEASE_SECONDS`` shortens the lease in this process (so a paused driver loses it
in seconds, not in 30).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from durably import workflow
from durably_faults import ledger, workload


def _shorten_lease(seconds: float) -> None:
    # Read by durably each time a lease is taken, in this process (the local executor's engines).
    from durably._lease import LEASE_SECONDS_ENV

    os.environ[LEASE_SECONDS_ENV] = str(seconds)


def _resume_or_wait(workflow_id: str) -> object:
    """Resume; if another driver runs it, wait for its output, and resume again if that driver died."""
    for _ in range(20):
        try:
            return workflow.resume(workflow_id)
        except workflow.WorkflowRunningError:
            pass
        try:
            return workflow.get_output(workflow_id, timeout=600)
        except workflow.WorkflowError:
            if workflow.get_status(workflow_id) != workflow.WorkflowStatus.RESUMABLE:
                raise
    return workflow.resume(workflow_id)


def main(storage: str, executor: str, workflow_id: str, run_dir: str, mode: str) -> None:
    lease_seconds = os.environ.get("DURABLY_FAULTS_LEASE_SECONDS")
    if lease_seconds:
        _shorten_lease(float(lease_seconds))
    workflow.init(storage=storage, executor=executor, ray_address=os.environ.get("RAY_ADDRESS") or None)
    callers = str(Path(run_dir, "callers"))
    ledger.append(callers, event="start", mode=mode)
    try:
        if mode == "run":
            output = workload.build(str(Path(run_dir, "ledger"))).run(workflow_id=workflow_id)
        else:
            output = _resume_or_wait(workflow_id)
    except BaseException as exc:
        ledger.append(callers, event="error", mode=mode, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    ledger.append(callers, event="output", mode=mode, output=output)


if __name__ == "__main__":
    main(*sys.argv[1:6])
