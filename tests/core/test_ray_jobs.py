"""Ray Jobs: a driver submitted with the Jobs API starts a workflow and exits; another job reads it.

This is how KubeRay's RayJob runs drivers. Also: Ray Client (``ray://``) is refused, clearly, and
steps run under the runtime_env of the job that started their workflow.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import run_child
from servers.ray_cluster import RayCluster

from durably import _config, workflow
from durably.executors._ray import inherit_runtime_env

SUBMITTING_JOB = """
import time
from pathlib import Path
from durably import workflow

@workflow.step
def wait_then_double(gate, value):
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return value * 2

workflow.init(storage={storage!r})  # joins the job's cluster: Ray sets RAY_ADDRESS for a job
wait_then_double.step({gate!r}, 21).run_async(workflow_id="from-a-job")
print("submitted", flush=True)
"""

READING_JOB = """
from durably import workflow
workflow.init(storage={storage!r})
print("output:", workflow.get_output("from-a-job", timeout=120), flush=True)
"""


@pytest.fixture(scope="module")
def jobs_cluster() -> Iterator[Any]:
    """A `ray start` head with its dashboard, which serves the Jobs API; this process stays off it."""
    cluster, client = _start_jobs_cluster()
    try:
        yield cluster, client
    finally:
        cluster.stop()


def _start_jobs_cluster(attempts: int = 3) -> tuple[RayCluster, Any]:
    """Start the head and wait for its Jobs API; a head whose raylet misses Ray's registration
    deadline on a loaded machine exits (`ray start --block` ends): start it again, as conftest does."""
    from ray.job_submission import JobSubmissionClient

    for attempt in range(1, attempts + 1):
        cluster = RayCluster(dashboard=True)
        deadline = time.monotonic() + 600
        while cluster.nodes[0].process.poll() is None and time.monotonic() < deadline:
            # The dashboard answers before the raylet has registered, which may still fail.
            if "Ray runtime started" not in cluster.nodes[0].log_path.read_text(errors="replace"):
                time.sleep(1)
                continue
            try:
                client = JobSubmissionClient(cluster.dashboard_url)
                client.list_jobs()
                return cluster, client
            except Exception:
                time.sleep(1)
        log = cluster.nodes[0].log_path.read_text(errors="replace")[-2000:]
        cluster.stop()
        if attempt == attempts:
            raise AssertionError(f"the Ray head with the Jobs API did not start:\n{log}")
    raise AssertionError("unreachable")


def _run_job(client: Any, script: Path) -> str:
    """Submit ``python script`` as a Ray job, wait for it to end, return its logs (it must succeed)."""
    import requests
    from ray.job_submission import JobStatus

    job = f"{script.stem}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 240
    while True:
        try:
            client.submit_job(entrypoint=f"{sys.executable} {script}", submission_id=job)
            break
        except (RuntimeError, requests.ConnectionError) as error:
            # On a loaded machine the head's job agent registers after the dashboard answers
            # ("No available agent ... try again later"), and the dashboard's job module may
            # drop a connection while it starts. A submission that got through is not repeated.
            if "already exists" in str(error):
                break
            transient = isinstance(error, requests.ConnectionError) or "No available agent" in str(error)
            assert transient and time.monotonic() < deadline, error
            time.sleep(1)
    while (status := client.get_job_status(job)) not in {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
    }:
        assert time.monotonic() < deadline, f"job {job} is still {status}"
        time.sleep(0.5)
    logs: str = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    return logs


def test_a_workflow_started_by_a_submitted_job_finishes_after_it_and_another_job_reads_it(
    jobs_cluster: Any, tmp_path: Path
) -> None:
    _, client = jobs_cluster
    storage, gate = str(tmp_path / "storage"), tmp_path / "gate"
    submitting, reading = tmp_path / "submit.py", tmp_path / "read.py"
    submitting.write_text(SUBMITTING_JOB.format(storage=storage, gate=str(gate)))
    reading.write_text(READING_JOB.format(storage=storage))
    assert "submitted" in _run_job(client, submitting)
    gate.touch()  # only now can the workflow finish: the job that started it has ended
    assert "output: 42" in _run_job(client, reading)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_init_refuses_ray_client_addresses_before_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    workflow.init(storage=str(tmp_path / "kept"), executor="local")
    if how == "environment":
        monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(ValueError, match=r"does not support Ray Client .*ray job submit"):
        workflow.init(
            storage=str(tmp_path / "other"),
            executor="ray",
            ray_address="ray://head:10001" if how == "argument" else None,
        )
    assert _config.current().storage_url.endswith("kept")  # the previous settings are still in force


JOB_WITH_ENV_VARS = """
import os
import ray
from durably import workflow

@workflow.step
def job_variable():
    return os.environ.get("DURABLY_TEST_JOB_VARIABLE")

ray.init(runtime_env={{"env_vars": {{"DURABLY_TEST_JOB_VARIABLE": "from the job"}}}})
workflow.init(storage={storage!r}, executor="ray")
print("step saw:", job_variable.step().run(workflow_id="job-env"), flush=True)
"""


def test_steps_run_under_the_runtime_env_of_the_job_that_started_the_workflow(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    # The engine actors belong to another job (the engine home's); the steps still get the
    # starting driver's runtime_env, as Ray tasks it submitted would.
    driver = run_child(JOB_WITH_ENV_VARS.format(storage=str(tmp_path / "storage")), env=ray_cluster.env())
    assert driver.returncode == 0, driver.stderr
    assert "step saw: from the job" in driver.stdout


def test_a_steps_own_runtime_env_is_merged_over_its_jobs_as_ray_merges_a_tasks() -> None:
    inherited = {"working_dir": "gcs://job.zip", "env_vars": {"A": "job", "B": "job"}}
    own = {"env_vars": {"B": "step"}, "pip": ["six"]}
    assert inherit_runtime_env(inherited, own) == {
        "working_dir": "gcs://job.zip",
        "env_vars": {"A": "job", "B": "step"},
        "pip": ["six"],
    }
