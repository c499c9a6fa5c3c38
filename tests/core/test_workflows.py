"""Running workflows: values, ids, re-running finished ids, concurrent drivers, run_async."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run

from durably import workflow

pytestmark = pytest.mark.workflow


@workflow.step
def counted(counter_dir: str, name: str, value: Any) -> Any:
    record_run(counter_dir, name)
    return value


@workflow.step
def pair(a: Any, b: Any) -> tuple[Any, Any]:
    return (a, b)


@workflow.step
def wait_for_file(path: str, value: Any) -> Any:
    deadline = time.monotonic() + 120
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return value


@pytest.mark.storage_on_ray
def test_diamond_graph_runs_the_shared_step_once(wf: Any, counter_dir: Path) -> None:
    shared = counted.step(str(counter_dir), "shared", 7)
    assert pair.step(shared, shared).run() == (7, 7)
    assert count_runs(counter_dir, "shared") == 1


def test_running_a_finished_id_returns_the_stored_output_without_running(wf: Any, counter_dir: Path) -> None:
    flow = counted.step(str(counter_dir), "once", "first")
    assert flow.run(workflow_id="same") == "first"
    again = counted.step(str(counter_dir), "once", "second")
    assert again.run(workflow_id="same") == "first"
    assert count_runs(counter_dir, "once") == 1


def test_running_an_id_that_is_running_raises(wf: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    handle = wait_for_file.step(str(gate), 1).run_async(workflow_id="busy")
    deadline = time.monotonic() + 60
    while wf.get_status("busy") != wf.WorkflowStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(wf.WorkflowRunningError, match="busy"):
        wait_for_file.step(str(gate), 2).run(workflow_id="busy")
    gate.touch()
    assert _result(handle) == 1


def _result(handle: Any) -> Any:
    if isinstance(handle, concurrent.futures.Future):
        return handle.result(timeout=120)
    import ray

    return ray.get(handle, timeout=120)


def test_run_async_returns_an_object_ref_or_future(wf: Any, executor: str) -> None:
    handle = pair.step(1, 2).run_async(workflow_id="async")
    if executor == "ray":
        import ray

        assert isinstance(handle, ray.ObjectRef)
    else:
        assert isinstance(handle, concurrent.futures.Future)
    assert _result(handle) == (1, 2)
    assert wf.get_output("async") == (1, 2)


def test_generated_ids_are_unique_and_sort_by_creation(wf: Any) -> None:
    for index in range(5):
        pair.step(index, index).run()
    ids = [workflow_id for workflow_id, _ in wf.list_all()]
    assert len(set(ids)) == 5
    outputs = [wf.get_output(workflow_id) for workflow_id in sorted(ids)]
    assert outputs == [(index, index) for index in range(5)]


def test_generated_ids_from_many_threads_never_collide() -> None:
    from durably._ids import generate_workflow_id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: generate_workflow_id(), range(2000)))
    assert len(set(ids)) == 2000


@pytest.mark.storage_on_ray
def test_two_threads_running_the_same_new_id_run_its_steps_once(wf: Any, counter_dir: Path) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(counted.step(str(counter_dir), "raced", 3).run(workflow_id="raced"))
        except workflow.WorkflowRunningError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert count_runs(counter_dir, "raced") == 1
    assert 3 in outcomes
    assert wf.get_output("raced") == 3


def test_workflow_metadata_is_stored_with_timings(wf: Any) -> None:
    before = time.time()
    pair.step(1, 1).run(workflow_id="meta", metadata={"owner": "team-a"})
    metadata = wf.get_metadata("meta")
    assert metadata["user_metadata"] == {"owner": "team-a"}
    assert metadata["status"] == "SUCCESSFUL"
    assert before <= metadata["stats"]["start_time"] <= metadata["stats"]["end_time"] <= time.time()


def test_step_metadata_has_user_metadata_and_timings(wf: Any) -> None:
    tagged = pair.options(name="tagged", metadata={"k": "v"})
    tagged.step(1, 2).run(workflow_id="step-meta")
    metadata = wf.get_metadata("step-meta", name="tagged")
    assert metadata["user_metadata"] == {"k": "v"}
    assert metadata["stats"]["start_time"] <= metadata["stats"]["end_time"]
    assert wf.get_output("step-meta", name="tagged") == (1, 2)


def test_repeated_step_names_get_numbered_ids(wf: Any) -> None:
    flow = pair.step(pair.step(1, 2), pair.step(3, 4))
    flow.run(workflow_id="numbered")
    assert {wf.get_output("numbered", name=name) for name in ("pair", "pair_1")} == {(1, 2), (3, 4)}
    assert wf.get_output("numbered", name="pair_2") == ((1, 2), (3, 4))
