"""Ray's libraries inside steps: Ray Data pipelines, Ray Tune searches, and Datasets passed between steps."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from durably_test_helpers import count_runs, run_child

from durably import workflow


@workflow.step
def squares_total(count: int) -> int:
    import ray.data

    squared = ray.data.range(count).map_batches(lambda batch: {"id": batch["id"] ** 2})
    return int(squared.sum("id"))


def test_a_step_runs_a_ray_data_pipeline(ray_cluster: Any, tmp_path: Path) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="ray")
    assert squares_total.step(10).run(workflow_id="data-pipeline") == sum(i * i for i in range(10))


@workflow.step
def best_x(results_dir: str) -> int:
    from ray import tune

    def trainable(config: dict[str, int]) -> None:
        tune.report({"score": -((config["x"] - 2) ** 2)})

    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, 3])},
        # One trial at a time: this step holds one of the test cluster's two CPUs.
        tune_config=tune.TuneConfig(metric="score", mode="max", max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=results_dir, verbose=0),
    )
    return int(tuner.fit().get_best_result().config["x"])


def test_a_step_runs_a_ray_tune_search(ray_cluster: Any, tmp_path: Path) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="ray")
    assert best_x.step(str(tmp_path / "tune")).run(workflow_id="tune-search") == 2


@workflow.step
def make_dataset(count: int) -> Any:
    import ray.data

    return ray.data.range(count, override_num_blocks=3).map_batches(
        lambda batch: {"id": batch["id"], "square": batch["id"] ** 2}
    )


@workflow.step
def rows_of(dataset: Any) -> list[tuple[int, int]]:
    return sorted((int(row["id"]), int(row["square"])) for row in dataset.take_all())


def test_a_dataset_returned_by_a_step_is_consumed_by_the_next(ray_cluster: Any, tmp_path: Path) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="ray")
    assert rows_of.step(make_dataset.step(6)).run(workflow_id="dataset-chain") == [
        (i, i * i) for i in range(6)
    ]


DATASET_CRASH_CHILD = """
import os
from pathlib import Path
import cloudpickle, durably_test_helpers
from durably import workflow
from durably_test_helpers import kill_process_tree, record_run

cloudpickle.register_pickle_by_value(durably_test_helpers)
import ray

counts = {counts!r}
# This driver's own Ray, which dies with it; a loaded machine can miss Ray's start-up deadline.
for attempt in range(3):
    try:
        ray.init(address="local", _node_ip_address=os.environ["DURABLY_RAY_NODE_IP"])
        break
    except Exception:
        ray.shutdown()
        if attempt == 2:
            raise
workflow.init(storage={storage!r}, executor="ray")
driver_pid = os.getpid()

@workflow.step
def make_dataset(count):
    import ray.data
    record_run(counts, "make")
    return ray.data.range(count, override_num_blocks=3).map_batches(
        lambda batch: {{"id": batch["id"], "square": batch["id"] ** 2}}
    )

@workflow.step
def rows_of(dataset):
    if not Path(counts, "crashed").exists():
        Path(counts, "crashed").touch()
        kill_process_tree(driver_pid)  # the driver and the Ray it started: the blocks die too
    return sorted((int(row["id"]), int(row["square"])) for row in dataset.take_all())

rows_of.step(make_dataset.step(9)).run(workflow_id="dataset-crash")
"""


def test_a_dataset_checkpointed_before_a_crash_is_read_by_the_resume_on_a_new_cluster(
    ray_cluster: Any, tmp_path: Path, counter_dir: Path
) -> None:
    storage = str(tmp_path / "storage")
    child = run_child(
        DATASET_CRASH_CHILD.format(storage=storage, counts=str(counter_dir)), env={"RAY_ADDRESS": ""}
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    workflow.init(storage=storage, executor="ray")
    assert workflow.resume("dataset-crash") == [(i, i * i) for i in range(9)]
    assert count_runs(counter_dir, "make") == 1  # the data came from the checkpoint, not a rerun
