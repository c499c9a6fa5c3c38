"""Queueing: at most N workflows run at once, M more wait as PENDING, and restarts resume them in order."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import run_child

from durably import workflow
from durably._graph import flatten
from durably._inspect import workflow_store
from durably._lease import Lease


@workflow.step
def wait_for_gate(gate: str, log: str, name: str) -> str:
    with open(Path(log, "started"), "a") as handle:
        handle.write(f"{name}\n")
    deadline = time.monotonic() + 120
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("gate never opened")
        time.sleep(0.02)
    return name


@pytest.fixture
def limited(storage_url: str, executor: str) -> Iterator[Any]:
    workflow.init(storage=storage_url, executor=executor, max_running_workflows=2, max_pending_workflows=3)
    yield workflow
    workflow.init(storage=storage_url, executor=executor)  # the Ray engine is shared: lift the limits


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _result(handle: Any) -> Any:
    import concurrent.futures

    if isinstance(handle, concurrent.futures.Future):
        return handle.result(timeout=120)
    import ray

    return ray.get(handle, timeout=120)


def test_workflows_beyond_the_running_limit_are_pending_until_a_slot_frees(
    limited: Any, tmp_path: Path
) -> None:
    gate, log = str(tmp_path / "gate"), str(tmp_path)
    handles = [
        wait_for_gate.step(gate, log, f"w{index}").run_async(workflow_id=f"w{index}") for index in range(5)
    ]
    _wait_for(
        lambda: sorted(status.value for _, status in limited.list_all()) == ["PENDING"] * 3 + ["RUNNING"] * 2
    )
    assert {limited.get_status(f"w{index}") for index in (2, 3, 4)} == {limited.WorkflowStatus.PENDING}
    Path(gate).touch()
    assert [_result(handle) for handle in handles] == [f"w{index}" for index in range(5)]
    assert sorted(Path(log, "started").read_text().split()) == [f"w{index}" for index in range(5)]


def test_submitting_beyond_the_pending_limit_raises(limited: Any, tmp_path: Path) -> None:
    gate, log = str(tmp_path / "gate"), str(tmp_path)
    handles = [
        wait_for_gate.step(gate, log, f"q{index}").run_async(workflow_id=f"q{index}") for index in range(5)
    ]
    with pytest.raises(limited.WorkflowQueueFullError, match="max_pending_workflows") as raised:
        wait_for_gate.step(gate, log, "q5").run_async(workflow_id="q5")
    assert isinstance(raised.value, limited.WorkflowError)
    Path(gate).touch()
    assert len([_result(handle) for handle in handles]) == 5


def test_limits_must_be_positive(storage_url: str) -> None:
    with pytest.raises(ValueError, match="max_running_workflows must be a positive int"):
        workflow.init(storage=storage_url, executor="local", max_running_workflows=0)


def test_limits_must_be_ints(storage_url: str) -> None:
    with pytest.raises(TypeError, match="max_pending_workflows must be a positive int"):
        workflow.init(storage=storage_url, executor="local", max_pending_workflows=1.7)  # type: ignore[arg-type]


RESTART_CHILD = """
import os, signal, time
from pathlib import Path
import cloudpickle, durably_test_helpers
from durably import workflow
cloudpickle.register_pickle_by_value(durably_test_helpers)
from test_queueing_steps import wait_for_gate

storage, gate, log = {storage!r}, {gate!r}, {log!r}
workflow.init(storage=storage, executor="local", max_running_workflows=2, max_pending_workflows=5)
for index in range(4):
    wait_for_gate.step(gate, log, f"r{{index}}").run_async(workflow_id=f"r{{index}}")
def started():
    path = Path(log, "started")
    return len(path.read_text().split()) if path.exists() else 0

deadline = time.monotonic() + 60
while started() < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.needs_persistent_storage
def test_after_a_restart_resume_all_restores_running_ones_first_then_pending(
    storage_url: str, tmp_path: Path
) -> None:
    gate, log = str(tmp_path / "gate"), str(tmp_path / "log")
    Path(log).mkdir()
    steps_module = Path(tmp_path, "test_queueing_steps.py")
    steps_module.write_text(STEPS_SOURCE)
    child = run_child(
        RESTART_CHILD.format(storage=storage_url, gate=gate, log=log), env={"PYTHONPATH": str(tmp_path)}
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage_url, executor="local", max_running_workflows=2, max_pending_workflows=5)
    statuses = dict(workflow.list_all())
    assert statuses == {
        "r0": workflow.WorkflowStatus.RESUMABLE,
        "r1": workflow.WorkflowStatus.RESUMABLE,
        "r2": workflow.WorkflowStatus.PENDING,
        "r3": workflow.WorkflowStatus.PENDING,
    }
    Path(log, "started").unlink()
    resumed = workflow.resume_all()
    assert [workflow_id for workflow_id, _ in resumed] == ["r0", "r1", "r2", "r3"]
    Path(gate).touch()
    assert [_result(handle) for _, handle in resumed] == ["r0", "r1", "r2", "r3"]
    assert Path(log, "started").read_text().split()[:2] in (["r0", "r1"], ["r1", "r0"])


STEPS_SOURCE = """
import time
from pathlib import Path
from durably import workflow


@workflow.step
def wait_for_gate(gate, log, name):
    with open(Path(log, "started"), "a") as handle:
        handle.write(name + "\\n")
    deadline = time.monotonic() + 120
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("gate never opened")
        time.sleep(0.02)
    return name
"""


@workflow.step
def constant(value: str) -> str:
    return value


def _queue_behind_a_running_workflow(storage_url: str, workflow_id: str) -> None:
    from durably._hosts import Admission

    admission = Admission()
    admission.configure(max_running=1, max_pending=None)
    admission.reserve(storage_url, "occupies-the-slot")
    admission.reserve(storage_url, workflow_id)


@pytest.mark.parametrize("final", ["CANCELED", "FAILED"])
def test_queueing_keeps_the_status_of_a_stopped_workflow(storage_url: str, final: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    store = workflow_store("done")
    store.create(flatten(constant.step("x")), {})
    store.save_status(final, epoch=0, ended_at=time.time())
    _queue_behind_a_running_workflow(storage_url, "done")
    assert workflow.get_status("done") == final


def test_queueing_keeps_running_a_workflow_another_driver_holds(storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="local")
    store = workflow_store("held")
    store.create(flatten(constant.step("x")), {})
    lease = Lease(store.storage, store.lease_key, "held")
    lease.acquire()
    try:
        assert lease.number is not None
        store.save_status(workflow.WorkflowStatus.RUNNING, epoch=lease.number, started_at=time.time())
        _queue_behind_a_running_workflow(storage_url, "held")
        assert workflow.get_status("held") == workflow.WorkflowStatus.RUNNING
    finally:
        lease.release()
