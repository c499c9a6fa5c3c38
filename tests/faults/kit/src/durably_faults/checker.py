"""The checker: after each run, what durably promises, read from storage, the ledger and the callers.

Checks, each a list of findings (empty: kept):

- ``answer``: the stored output, and every caller's, is the known answer;
- ``no re-execution``: no attempt of a step started after that step's checkpoint was written;
- ``one result``: every caller got the same output as the stored one; a checkpoint is never
  written twice with different bytes; every checkpointed consumer consumed the stored outputs;
- ``successful``: the workflow ended SUCCESSFUL and no driver saw it fail;
- ``records decode``: the workflow, each step's output and metadata load back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from durably import workflow
from durably_faults import ledger, workload
from durably_faults.supervisor import RunRecord

CHECKS = ("answer", "no re-execution", "one result", "successful", "records decode")
_DYNAMIC_SUFFIX = re.compile(r"^(.*)\.[0-9a-f]{12}$")


@dataclass
class Verdict:
    record: RunRecord
    findings: dict[str, list[str]] = field(default_factory=lambda: {check: [] for check in CHECKS})
    re_executions: int = 0
    lost_results: int = 0

    @property
    def failed(self) -> list[str]:
        return [check for check, found in self.findings.items() if found]


def _checkpoint_writes(record: RunRecord) -> dict[str, list[dict[str, Any]]]:
    """Each step name's successful checkpoint writes (output or continuation), oldest first."""
    pattern = re.compile(rf"^workflows/{re.escape(record.workflow_id)}/(steps|continuations)/([^/]+)$")
    writes: dict[str, list[dict[str, Any]]] = {}
    for line in ledger.read(record.storage_root + ".writes"):
        match = pattern.match(line.get("key", ""))
        if line.get("event") != "write" or not line.get("created") or match is None:
            continue
        step_id = match.group(2)
        dynamic = _DYNAMIC_SUFFIX.match(step_id)
        writes.setdefault(dynamic.group(1) if dynamic else step_id, []).append(line)
    return writes


def check_run(record: RunRecord) -> Verdict:
    verdict = Verdict(record)
    found = verdict.findings
    workflow.init(storage=record.storage_root, executor="local")
    workflow_id = record.workflow_id
    expected = workload.expected_answer()
    if record.gave_up:
        found["successful"].append(f"the supervisor gave up: {record.gave_up}")
    failures = [
        status
        for status in record.statuses
        if status != "SUCCESSFUL" and status != "RESUMABLE" and status != "RUNNING"
    ]
    if failures:
        found["successful"].append(f"statuses seen after a driver ended: {record.statuses}")
    callers = ledger.read(record.run_dir / "callers")
    for line in callers:
        if line.get("event") == "error" and "WorkflowRunningError" not in line["error"]:
            found["successful"].append(f"driver {line['pid']} ({line['mode']}) failed: {line['error'][:300]}")

    stored: Any = None
    try:
        status = workflow.get_status(workflow_id)
        if status != workflow.WorkflowStatus.SUCCESSFUL:
            found["successful"].append(f"final status {status.value}")
        else:
            stored = workflow.get_output(workflow_id, timeout=5)
        workflow.get_metadata(workflow_id)
    except Exception as exc:
        found["records decode"].append(f"workflow records: {type(exc).__name__}: {exc}"[:300])
    if stored is not None and stored.get("v") != expected:
        found["answer"].append(f"stored output {stored} is not the known answer {expected}")
    outputs = [line["output"] for line in callers if line.get("event") == "output"]
    for output in outputs:
        if output.get("v") != expected:
            found["answer"].append(f"a caller got {output}, not the known answer {expected}")
    if stored is not None and any(output != stored for output in outputs):
        different = [output for output in outputs if output != stored]
        verdict.lost_results += len(different)
        found["one result"].append(f"stored output {stored}; callers got {different}")

    attempts = [line for line in ledger.read(record.run_dir / "ledger") if "step" in line]
    writes = _checkpoint_writes(record)
    for name, written in writes.items():
        first = written[0]["ns"]
        late = [attempt for attempt in attempts if attempt["step"] == name and attempt["ns"] > first]
        if late:
            verdict.re_executions += len(late)
            found["no re-execution"].append(f"{name}: {len(late)} attempt(s) after its checkpoint")
        if len({line["data"] for line in written}) > 1:
            verdict.lost_results += 1
            found["one result"].append(
                f"{name}: checkpoint written {len(written)} times with different bytes"
            )

    stored_attempts: dict[str, str] = {}
    for name in workload.step_names():
        try:
            output = workflow.get_output(workflow_id, name=name)
            workflow.get_metadata(workflow_id, name=name)
        except Exception as exc:
            if stored is not None:
                found["records decode"].append(f"step {name}: {type(exc).__name__}: {exc}"[:300])
            continue
        if isinstance(output, dict):
            stored_attempts[name] = output["a"]
    by_attempt = {attempt["attempt"]: attempt for attempt in attempts}
    for name, attempt_id in stored_attempts.items():
        consumer = by_attempt.get(attempt_id)
        if consumer is None:
            found["one result"].append(f"{name}: stored attempt {attempt_id} is in no ledger line")
            continue
        for producer, seen in consumer["consumed"].items():
            if stored_attempts.get(producer, seen) != seen:
                verdict.lost_results += 1
                found["one result"].append(
                    f"{name} consumed {producer} attempt {seen}, but {stored_attempts[producer]} is stored"
                )
    return verdict


def check_actor_run(record: RunRecord, actor_id: str, callers: int, calls: int) -> Verdict:
    """The virtual-actor scenario: exactly ``callers * calls`` calls applied, each result given once."""
    verdict = Verdict(record)
    found = verdict.findings
    workflow.init(storage=record.storage_root, executor="local")
    total = callers * calls
    if record.gave_up:
        found["successful"].append(f"the supervisor gave up: {record.gave_up}")
    try:
        value = workflow.get_actor(actor_id).value.run()
    except Exception as exc:
        found["records decode"].append(f"actor {actor_id}: {type(exc).__name__}: {exc}"[:300])
        return verdict
    if value != total:
        found["answer"].append(f"the counter is {value} after {total} calls")
    results: dict[str, int] = {}
    for line in ledger.read(record.run_dir / "callers"):
        if line.get("event") == "output":
            if line["call"] in results and results[line["call"]] != line["output"]:
                found["one result"].append(
                    f"call {line['call']} returned {results[line['call']]} and then {line['output']}"
                )
            results[line["call"]] = line["output"]
    values = sorted(results.values())
    if values != list(range(1, total + 1)):
        duplicates = len(values) - len(set(values))
        verdict.lost_results += duplicates + (total - len(set(values)))
        found["one result"].append(
            f"{len(results)} calls answered with {len(set(values))} distinct counts, "
            f"{duplicates} counts given twice"
        )
    return verdict
