"""Several engine actors: workflows spread over them by id, and every guarantee holds across them."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run, run_child

from durably import _config, workflow
from durably._engine_home import FACTORY_ACTOR_NAME, HOME_ACTOR_NAME
from durably._hosts import (
    ENGINE_NAMESPACE,
    ENGINES_ENV,
    RayEngineHost,
    engine_actor_name,
    shard_of,
)


@workflow.step(num_cpus=0)
def wait_for_gate(gate: str, counter_dir: str, name: str, value: int) -> int:
    """Returns ``value`` once ``gate`` exists; records that it started."""
    record_run(counter_dir, name)
    deadline = time.monotonic() + 300
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def _ids_on(engines: int, shard: int, count: int, prefix: str) -> list[str]:
    """``count`` workflow ids that ``engines`` engines send to engine ``shard``."""
    found = (f"{prefix}-{number}" for number in range(10_000))
    picked = [workflow_id for workflow_id in found if shard_of(workflow_id, engines) == shard]
    return picked[:count]


def _engine(index: int) -> Any:
    import ray

    return ray.get_actor(engine_actor_name(index), namespace=ENGINE_NAMESPACE)


def _in_engine(index: int, function: Any) -> Any:
    """``function(actor_instance)`` run inside engine actor ``index``."""
    import ray

    return ray.get(_engine(index).__ray_call__.remote(function), timeout=120)


def _engine_pid(index: int) -> int:
    return int(_in_engine(index, lambda _: os.getpid()))


def _engine_node(index: int) -> str:
    def node(_: Any) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    return str(_in_engine(index, node))


def _driving(index: int) -> frozenset[str]:
    """The ids engine ``index`` runs (of the storage this process is configured with)."""
    import ray

    return frozenset(ray.get(_engine(index).driving.remote(_config.current().storage_url), timeout=120))


def _wait_for(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _remove_engine_actors() -> None:
    """Kill every engine actor of the cluster for good, so the next ``init`` places new ones."""
    import ray

    def engine_names() -> list[str]:
        return [
            entry["name"]
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry["namespace"] == ENGINE_NAMESPACE and entry["name"].startswith("durably-engine")
        ]

    for name in engine_names():
        ray.kill(ray.get_actor(name, namespace=ENGINE_NAMESPACE), no_restart=True)
    _wait_for(lambda: not engine_names(), "the killed engine actors are gone")


@pytest.fixture
def fresh_engines(ray_cluster: Any, storage_url: str) -> Iterator[None]:
    """Engine actors created by this test, placed on the nodes it has; afterwards the cluster's
    usual engine again, which this process is configured with."""
    _remove_engine_actors()
    yield
    _remove_engine_actors()
    workflow.init(storage=storage_url, executor="ray")


def test_the_engine_of_a_workflow_is_a_stable_hash_of_its_id() -> None:
    # The same in every process and Python version (str hashes are salted per process).
    assert [shard_of(f"w-{number}", 4) for number in range(8)] == [
        shard_of(f"w-{number}", 4) for number in range(8)
    ]
    assert shard_of("anything", 1) == 0
    assert {shard_of(f"w-{number}", 4) for number in range(100)} == {0, 1, 2, 3}


@pytest.mark.parametrize("engines", [0, -1])
def test_a_count_of_engines_below_one_is_refused(storage_url: str, engines: int) -> None:
    with pytest.raises(ValueError, match=r"engines=.* must be at least 1"):
        workflow.init(storage=storage_url, executor="ray", engines=engines)


@pytest.mark.parametrize("engines", [1.5, "2", True])
def test_a_count_of_engines_that_is_not_an_int_is_refused(storage_url: str, engines: Any) -> None:
    with pytest.raises(TypeError, match="engines must be a positive int"):
        workflow.init(storage=storage_url, executor="ray", engines=engines)


def test_a_bad_engines_variable_is_refused_naming_it(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENGINES_ENV, "two")
    with pytest.raises(ValueError, match=f"{ENGINES_ENV}='two' is not a whole number"):
        workflow.init(storage=storage_url, executor="ray")


def test_engines_with_the_local_executor_is_refused(storage_url: str) -> None:
    with pytest.raises(ValueError, match="engines is the number of Ray engine actors"):
        workflow.init(storage=storage_url, executor="local", engines=2)


def test_workflows_are_driven_by_both_of_two_engines(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2)
    ids = _ids_on(2, 0, 2, "spread") + _ids_on(2, 1, 2, "spread")
    handles = {
        workflow_id: wait_for_gate.step(gate, str(counter_dir), workflow_id, number).run_async(
            workflow_id=workflow_id
        )
        for number, workflow_id in enumerate(ids)
    }
    first, second = _driving(0), _driving(1)
    Path(gate).touch()
    assert first == set(ids[:2]) and second == set(ids[2:])
    assert {workflow_id: ray.get(handle) for workflow_id, handle in handles.items()} == {
        workflow_id: number for number, workflow_id in enumerate(ids)
    }


def test_what_runs_is_merged_over_every_engine(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2)
    ids = _ids_on(2, 0, 1, "merged") + _ids_on(2, 1, 1, "merged")
    handles = [
        wait_for_gate.step(gate, str(counter_dir), workflow_id, 1).run_async(workflow_id=workflow_id)
        for workflow_id in ids
    ]
    # A driver with one engine still sees both, the one the second engine runs too.
    workflow.init(storage=storage_url, executor="ray", engines=1)
    listed = dict(workflow.list_all())
    Path(gate).touch()
    assert listed == {workflow_id: workflow.WorkflowStatus.RUNNING for workflow_id in ids}
    assert ray.get(handles) == [1, 1]


@pytest.mark.parametrize("resumed_with", [2, 1])
def test_a_workflow_whose_engine_is_sigkilled_resumes_with_any_count_of_engines(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path, resumed_with: int
) -> None:
    import ray

    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2)
    (workflow_id,) = _ids_on(2, 1, 1, f"killed-{resumed_with}")
    handle = wait_for_gate.step(gate, str(counter_dir), "step", 7).run_async(workflow_id=workflow_id)
    _wait_for(lambda: count_runs(counter_dir, "step") == 1, "the step started")
    os.kill(_engine_pid(1), signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(handle, timeout=120)
    Path(gate).touch()
    # Resumed by the restarted second engine, or, with one engine, by the first.
    workflow.init(storage=storage_url, executor="ray", engines=resumed_with)
    assert workflow.resume(workflow_id) == 7
    assert workflow.get_status(workflow_id) == workflow.WorkflowStatus.SUCCESSFUL


def test_a_run_follows_its_engine_through_a_sigkill(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2)
    (workflow_id,) = _ids_on(2, 1, 1, "followed")
    outputs: list[int] = []
    runner = threading.Thread(
        target=lambda: outputs.append(
            wait_for_gate.step(gate, str(counter_dir), "step", 5).run(workflow_id=workflow_id)
        )
    )
    runner.start()
    _wait_for(lambda: count_runs(counter_dir, "step") == 1, "the step started")
    os.kill(_engine_pid(1), signal.SIGKILL)
    Path(gate).touch()
    runner.join(timeout=300)
    assert outputs == [5]


def test_an_engine_actor_left_by_another_durably_version_is_refused_at_init_by_name(
    fresh_engines: None, storage_url: str
) -> None:
    import ray

    class EngineOfAnOlderVersion:
        """Answers ``ping`` as the engine actor of a durably before ENGINE_PROTOCOL did (defined
        here, so Ray ships the class by value: workers cannot import test modules)."""

        def ping(self) -> bool:
            return True

    old = (
        ray.remote(num_cpus=0)(EngineOfAnOlderVersion)
        .options(  # type: ignore[attr-defined]
            name=engine_actor_name(0), namespace=ENGINE_NAMESPACE, lifetime="detached"
        )
        .remote()
    )
    assert ray.get(old.ping.remote()) is True
    with pytest.raises(workflow.WorkflowError, match="started by another durably version") as raised:
        workflow.init(storage=storage_url, executor="ray", engines=1)
    assert "ray.kill(ray.get_actor('durably-engine', namespace='durably'))" in str(raised.value)


def test_a_driver_with_one_engine_cancels_a_workflow_the_second_engine_runs(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2)
    (workflow_id,) = _ids_on(2, 1, 1, "cancelled")
    wait_for_gate.step(gate, str(counter_dir), "step", 1).run_async(workflow_id=workflow_id)
    _wait_for(lambda: count_runs(counter_dir, "step") == 1, "the step started")
    # The signal reaches the engine that runs it, though this host's only engine is the first.
    assert RayEngineHost("ray", engines=1).cancel(_config.current().storage_url, workflow_id)
    _wait_for(lambda: workflow.get_status(workflow_id) == workflow.WorkflowStatus.CANCELED, "it is cancelled")
    Path(gate).touch()


def test_with_queue_limits_every_workflow_queues_at_the_first_engine(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    gate = str(tmp_path / "gate")
    workflow.init(storage=storage_url, executor="ray", engines=2, max_running_workflows=1)
    ids = _ids_on(2, 1, 2, "limited")
    handles = [
        wait_for_gate.step(gate, str(counter_dir), workflow_id, 1).run_async(workflow_id=workflow_id)
        for workflow_id in ids
    ]
    _wait_for(lambda: count_runs(counter_dir, ids[0]) == 1, "the first workflow started")
    statuses = [workflow.get_status(workflow_id) for workflow_id in ids]
    driving = _driving(0)
    Path(gate).touch()
    assert statuses == [workflow.WorkflowStatus.RUNNING, workflow.WorkflowStatus.PENDING]
    assert driving == set(ids)
    assert ray.get(handles) == [1, 1]


def test_an_engine_killed_for_good_is_created_again_by_the_next_workflow_sent_to_it(
    ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    gate = tmp_path / "gate"
    gate.touch()
    workflow.init(storage=storage_url, executor="ray", engines=2)
    ray.kill(_engine(1), no_restart=True)  # as when its node is gone: it cannot restart
    (workflow_id,) = _ids_on(2, 1, 1, "recreated")
    step = wait_for_gate.step(str(gate), str(counter_dir), "step", 4)
    assert step.run(workflow_id=workflow_id) == 4


ENGINES_CREATING_DRIVER = """
from durably import workflow

@workflow.step
def nothing():
    return None

workflow.init(storage={storage!r}, executor="ray")
nothing.step().run(workflow_id="made-the-engines")
"""


@workflow.step
def worker_pid() -> int:
    return os.getpid()


@workflow.step
def gathered(*pids: int) -> list[int]:
    return list(pids)


def test_steps_reuse_warm_workers_after_the_driver_that_created_the_engines_exited(
    fresh_engines: None, ray_cluster: Any, storage_url: str
) -> None:
    # Ray kills every idle worker of a job as soon as its driver has exited: engines of the first
    # driver's job would start each later step on a new worker. They belong to the home's job.
    child = run_child(ENGINES_CREATING_DRIVER.format(storage=storage_url), env=ray_cluster.env())
    assert child.returncode == 0, child.stderr
    workflow.init(storage=storage_url, executor="ray")
    runs = [
        gathered.step(*[worker_pid.step() for _ in range(3)]).run(workflow_id=f"pids-{number}")
        for number in range(2)
    ]
    assert set(runs[0]) & set(runs[1])


def _job_of(actor: Any) -> str:
    import ray

    def job(_: Any) -> str:
        import ray

        return str(ray.get_runtime_context().get_job_id())

    return str(ray.get(actor.__ray_call__.remote(job), timeout=120))


def test_an_engine_lost_with_the_home_is_made_again_in_a_new_homes_job(
    fresh_engines: None, ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    gate = tmp_path / "gate"
    gate.touch()
    workflow.init(storage=storage_url, executor="ray", engines=1)
    step = wait_for_gate.step(str(gate), str(counter_dir), "step", 4)
    assert step.run(workflow_id="before") == 4
    # As when the home's node and every engine are gone: the factory's job ends with the home.
    ray.kill(ray.get_actor(HOME_ACTOR_NAME, namespace=ENGINE_NAMESPACE), no_restart=True)
    _wait_for(lambda: FACTORY_ACTOR_NAME not in _named_in_durably(), "the old factory is gone")
    ray.kill(_engine(0), no_restart=True)
    assert step.run(workflow_id="after") == 4
    factory = ray.get_actor(FACTORY_ACTOR_NAME, namespace=ENGINE_NAMESPACE)
    assert _job_of(_engine(0)) == _job_of(factory)


def _named_in_durably() -> set[str]:
    import ray

    return {
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == ENGINE_NAMESPACE
    }


def _alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


@pytest.mark.multinode
def test_on_two_nodes_two_engines_drive_workflows_and_every_workflow_outlives_a_node_killed(
    fresh_engines: None, ray_cluster: Any, storage_url: str, tmp_path: Path, counter_dir: Path
) -> None:
    import ray

    node = ray_cluster.join_node(num_cpus=1, resources='{"second_node": 1}')
    try:
        nodes = {str(entry["NodeID"]) for entry in _alive_nodes()}
        assert len(nodes) == 2
        gate = str(tmp_path / "gate")
        workflow.init(storage=storage_url, executor="ray")  # the default: one engine per node
        ids = _ids_on(2, 0, 2, "nodes") + _ids_on(2, 1, 2, "nodes")
        handles = {
            workflow_id: wait_for_gate.step(gate, str(counter_dir), workflow_id, 3).run_async(
                workflow_id=workflow_id
            )
            for workflow_id in ids
        }
        assert {_engine_node(0), _engine_node(1)} == nodes
        assert (_driving(0), _driving(1)) == (set(ids[:2]), set(ids[2:]))
        node.kill()  # the second node crashes, with whatever engine and steps it held
        Path(gate).touch()
        outputs = {}
        for workflow_id, handle in handles.items():
            try:
                outputs[workflow_id] = ray.get(handle, timeout=300)
            except ray.exceptions.RayActorError:  # its engine was on the killed node
                outputs[workflow_id] = workflow.resume(workflow_id)
        assert outputs == dict.fromkeys(ids, 3)
    finally:
        node.stop()
        # Later tests count the nodes to place their engines: wait until this one is gone.
        _wait_for(lambda: len(_alive_nodes()) == 1, "the second node is gone", timeout=300)
