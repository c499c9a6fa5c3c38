"""On a Ray cluster started with `ray start`: workflows outlive their driver; steps run on any node."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import run_child

from durably import workflow

pytestmark = pytest.mark.multinode

SUBMITTING_DRIVER = """
import os, signal, sys, time
from pathlib import Path
from durably import workflow

@workflow.step
def wait_then_double(gate, value):
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return value * 2

workflow.init(storage={storage!r}, executor="ray")
ref = wait_then_double.step({gate!r}, 21).run_async(workflow_id={workflow_id!r})
print("submitted", flush=True)
if {kill}:
    os.kill(os.getpid(), signal.SIGKILL)
"""

READING_DRIVER = """
from durably import workflow
workflow.init(storage={storage!r}, executor="ray")
print(workflow.get_output({workflow_id!r}, timeout=120))
"""


@pytest.mark.parametrize("how", ["exits", "is-killed"])
def test_workflow_started_by_a_driver_that_exits_finishes_and_a_new_driver_reads_it(
    ray_cluster: Any, tmp_path: Path, how: str
) -> None:
    storage, gate, workflow_id = str(tmp_path / "storage"), str(tmp_path / "gate"), f"outlives-{how}"
    kill = how == "is-killed"
    submitter = run_child(
        SUBMITTING_DRIVER.format(storage=storage, gate=gate, workflow_id=workflow_id, kill=kill),
        env=ray_cluster.env(),
    )
    assert submitter.returncode == (-signal.SIGKILL if kill else 0), submitter.stderr
    assert "submitted" in submitter.stdout
    Path(gate).touch()  # only now can the workflow finish: its driver is gone
    reader = run_child(READING_DRIVER.format(storage=storage, workflow_id=workflow_id), env=ray_cluster.env())
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip().splitlines()[-1] == "42"


@workflow.step(resources={"second_node": 1}, num_cpus=0)
def where_am_i() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@workflow.step(resources={"durably_test": 1}, num_cpus=0)  # a resource only the head node has
def head_node() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@workflow.step
def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b)


def test_steps_run_on_a_second_node_joined_with_ray_start(ray_cluster: Any, tmp_path: Path) -> None:
    import ray

    node = ray_cluster.add_node(num_cpus=1, resources='{"second_node": 1}')
    try:
        deadline = time.monotonic() + 120
        while ray.cluster_resources().get("second_node", 0) < 1:
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)
        workflow.init(storage=str(tmp_path / "storage"), executor="ray")
        second, first = pair.step(where_am_i.step(), head_node.step()).run(workflow_id="two-nodes")
        nodes = {entry["NodeID"]: entry for entry in ray.nodes() if entry["Alive"]}
        assert second in nodes and nodes[second]["Resources"].get("second_node") == 1
        assert second != first
    finally:
        node.stop()
        # The default count of engines is one per alive node: later tests must not count this one.
        deadline = time.monotonic() + 300
        while len([entry for entry in ray.nodes() if entry["Alive"]]) > 1:
            assert time.monotonic() < deadline, "the second node is still alive after it stopped"
            time.sleep(0.5)
