"""Ray Jobs: a driver submitted with the Jobs API starts a workflow and exits; another job reads it.

This is how KubeRay's RayJob runs drivers. Also: Ray Client (``ray://``) is refused, clearly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.ray_cluster import RayCluster

from durably import workflow

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
    from ray.job_submission import JobSubmissionClient

    cluster = RayCluster(dashboard=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                client = JobSubmissionClient(cluster.dashboard_url)
                client.list_jobs()
                break
            except Exception:
                assert time.monotonic() < deadline, f"the Jobs API did not answer; logs in {cluster.temp_dir}"
                time.sleep(1)
        yield cluster, client
    finally:
        cluster.stop()


def _run_job(client: Any, script: Path) -> str:
    """Submit ``python script`` as a Ray job, wait for it to end, return its logs (it must succeed)."""
    from ray.job_submission import JobStatus

    job = client.submit_job(entrypoint=f"{sys.executable} {script}")
    deadline = time.monotonic() + 240
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
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
    assert workflow.storage().url.endswith("kept")  # the previous settings are still in force
