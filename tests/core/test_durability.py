"""Crashes and corruption: finished steps never run again; damaged checkpoints are refused."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run, run_child

from durably import workflow

CHAIN_CHILD = """
import os, signal, sys
from pathlib import Path
import cloudpickle, durably_test_helpers
from durably import workflow
from durably_test_helpers import kill_process_tree, record_run

cloudpickle.register_pickle_by_value(durably_test_helpers)

storage, executor, counts, crash_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
workflow.init(storage=storage, executor=executor, ray_address=os.environ.get("CHILD_RAY_ADDRESS"))
driver_pid = os.getpid()

@workflow.step
def link(previous, index):
    record_run(counts, f"link{index}")
    if index == crash_at and not Path(counts, "crashed").exists():
        Path(counts, "crashed").touch()
        kill_process_tree(driver_pid)  # the driver and any Ray it started, at one instant
    return previous + [index]

flow = link.step([], 0)
for index in range(1, 6):
    flow = link.step(flow, index)
print(flow.run(workflow_id="crashy"))
"""


def _run_chain_child(storage_url: str, executor: str, counter_dir: Path, crash_at: int, **env: str) -> Any:
    script = CHAIN_CHILD.replace(
        "sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])",
        f"{storage_url!r}, {executor!r}, {str(counter_dir)!r}, {crash_at}",
    )
    return run_child(script, env=env)


@pytest.mark.workflow
@pytest.mark.needs_persistent_storage
def test_driver_killed_mid_workflow_resumes_without_rerunning_finished_steps(
    storage_url: str, counter_dir: Path
) -> None:
    child = _run_chain_child(storage_url, "local", counter_dir, crash_at=3)
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage_url, executor="local")
    assert workflow.get_status("crashy") == workflow.WorkflowStatus.RESUMABLE
    assert workflow.resume("crashy") == [0, 1, 2, 3, 4, 5]
    runs = [count_runs(counter_dir, f"link{index}") for index in range(6)]
    assert runs == [1, 1, 1, 2, 1, 1]


def test_driver_and_its_ray_cluster_killed_resume_on_another_cluster(
    ray_cluster: Any, tmp_path: Path, counter_dir: Path
) -> None:
    storage_url = str(tmp_path / "storage")
    child = _run_chain_child(
        storage_url, "ray", counter_dir, crash_at=3, CHILD_RAY_ADDRESS="local", RAY_ADDRESS=""
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage_url, executor="ray")
    _wait_for_status("crashy", workflow.WorkflowStatus.RESUMABLE)  # the dead cluster's processes exit
    assert workflow.resume("crashy") == [0, 1, 2, 3, 4, 5]
    runs = [count_runs(counter_dir, f"link{index}") for index in range(6)]
    assert runs[:3] == [1, 1, 1]
    assert runs[3] in (1, 2)  # the worker may still checkpoint it while its dying cluster goes down
    assert runs[4:] == [1, 1]


def _wait_for_status(workflow_id: str, wanted: workflow.WorkflowStatus, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while workflow.get_status(workflow_id) != wanted:
        assert time.monotonic() < deadline, (
            f"{workflow_id} is {workflow.get_status(workflow_id)}, not {wanted}"
        )
        time.sleep(0.2)


@workflow.step
def kill_engine_once(counter_dir: str, value: int) -> int:
    import ray

    record_run(counter_dir, "killer")
    if not Path(counter_dir, "killed").exists():
        Path(counter_dir, "killed").touch()
        ray.kill(ray.get_actor("durably-engine", namespace="durably"), no_restart=False)
        import time

        time.sleep(30)  # the engine's death takes this task with it
    return value + 1


@workflow.step
def counted(counter_dir: str, name: str, value: int) -> int:
    record_run(counter_dir, name)
    return value


def test_engine_actor_killed_mid_workflow_is_resumable(
    ray_cluster: Any, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    workflow.init(storage=str(tmp_path / "storage"), executor="ray")
    flow = counted.step(
        str(counter_dir),
        "after",
        kill_engine_once.step(str(counter_dir), counted.step(str(counter_dir), "before", 1)),
    )
    handle = flow.run_async(workflow_id="engine-killed")
    with pytest.raises((ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)):
        ray.get(handle, timeout=120)
    _wait_for_status("engine-killed", workflow.WorkflowStatus.RESUMABLE)
    assert workflow.resume("engine-killed") == 2
    assert count_runs(counter_dir, "before") == 1
    assert count_runs(counter_dir, "killer") == 2
    assert count_runs(counter_dir, "after") == 1


@workflow.step(max_retries=2)
def die_once(counter_dir: str) -> str:
    record_run(counter_dir, "die_once")
    if not Path(counter_dir, "died").exists():
        Path(counter_dir, "died").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@pytest.mark.storage_on_ray
def test_killed_ray_worker_counts_as_a_failure_and_is_retried(
    ray_cluster: Any, storage_url: str, counter_dir: Path
) -> None:
    workflow.init(storage=storage_url, executor="ray")
    assert die_once.step(str(counter_dir)).run() == "survived"
    assert count_runs(counter_dir, "die_once") == 2


def test_killed_ray_worker_without_retries_fails_the_workflow(
    ray_cluster: Any, storage_url: str, counter_dir: Path
) -> None:
    workflow.init(storage=storage_url, executor="ray")
    with pytest.raises(workflow.WorkflowExecutionError, match="die_once"):
        die_once.options(max_retries=0).step(str(counter_dir)).run(workflow_id="worker-died")
    assert workflow.get_status("worker-died") == workflow.WorkflowStatus.FAILED


@workflow.step(max_retries=3, retry_delay=0.01)
def crash_twice_then_raise(counter_dir: str) -> str:
    record_run(counter_dir, "attempt")
    if count_runs(Path(counter_dir), "attempt") <= 2:
        os.kill(os.getpid(), signal.SIGKILL)
    raise ValueError("still failing")


def test_worker_crashes_and_exceptions_share_one_max_retries_budget(
    ray_cluster: Any, storage_url: str, counter_dir: Path
) -> None:
    workflow.init(storage=storage_url, executor="ray")
    with pytest.raises(workflow.WorkflowExecutionError, match="still failing"):
        crash_twice_then_raise.step(str(counter_dir)).run()
    assert count_runs(counter_dir, "attempt") == 4  # max_retries=3: four attempts in all, of either kind


@workflow.step(max_retries=0)
def needs_gate(counter_dir: str, value: int) -> int:
    if not Path(counter_dir, "open").exists():
        raise RuntimeError("closed")
    return value * 10


@pytest.mark.workflow
@pytest.mark.parametrize("damage", ["truncate", "flip-a-byte", "garbage"])
def test_corrupted_checkpoint_is_refused_with_its_key(wf: Any, counter_dir: Path, damage: str) -> None:
    flow = needs_gate.step(str(counter_dir), counted.step(str(counter_dir), "source", 4))
    with pytest.raises(wf.WorkflowExecutionError):
        flow.run(workflow_id="damaged")
    from durably._api import storage

    key = "workflows/damaged/steps/counted"
    data = storage().get(key)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip-a-byte":
        data = data[:-1] + bytes([data[-1] ^ 0xFF])
    else:
        data = b"not a checkpoint at all"
    storage().put(key, data)
    (counter_dir / "open").touch()
    with pytest.raises(wf.WorkflowExecutionError) as raised:
        wf.resume("damaged")
    cause = raised.value.__cause__
    assert isinstance(cause, wf.CheckpointCorruptedError)
    assert cause.key == key
    assert key in str(raised.value)
    assert count_runs(counter_dir, "source") == 1


class Proxy:
    """Stands for something else, as many proxies do: its ``__getattr__`` reads its own ``_name``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getstate__(self) -> dict[str, str]:
        # Without it, Python 3.10's pickle asks __getattr__ for __getstate__ and calls the string.
        return self.__dict__

    def __getattr__(self, attribute: str) -> str:
        return f"{self._name}.{attribute}"


PROXY = Proxy("proxy")


@workflow.step
def uses_proxy() -> str:
    return str(PROXY._name)


@pytest.mark.workflow
def test_step_whose_objects_cannot_be_rebuilt_is_a_load_error_not_a_corrupted_checkpoint(wf: Any) -> None:
    # Unpickling the Proxy asks it for __setstate__ before _name is set: __getattr__ recurses.
    # The stored bytes are intact; calling them corrupted sent users to restore backups.
    with pytest.raises(wf.WorkflowExecutionError) as raised:
        uses_proxy.step().run(workflow_id="unloadable")
    cause = raised.value.__cause__
    assert isinstance(cause, wf.WorkflowError)
    assert not isinstance(cause, wf.CheckpointCorruptedError)
    assert "workflows/unloadable/functions/" in str(raised.value)
    assert "RecursionError" in str(raised.value)


@pytest.mark.storage_on_ray
@pytest.mark.workflow
def test_one_object_per_step_and_functions_stored_once(wf: Any, counter_dir: Path) -> None:
    flow = counted.step(str(counter_dir), "c", 0)
    for _ in range(9):
        flow = counted.step(str(counter_dir), "c", flow)
    flow.run(workflow_id="layout")
    from durably._api import storage

    keys = list(storage().list("workflows/layout"))
    assert len([key for key in keys if "/steps/" in key]) == 10
    assert len([key for key in keys if "/functions/" in key]) == 1
    assert len([key for key in keys if key.endswith("/graph")]) == 1
