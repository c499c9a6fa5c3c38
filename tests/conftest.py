"""Fixtures shared by every test folder: a real Ray cluster, storages, and child-process helpers."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import cloudpickle  # noqa: E402
import durably_test_helpers  # noqa: E402
from servers.ray_cluster import LOOPBACK_IP, RayCluster  # noqa: E402

# Steps in tests call these helpers from Ray workers that cannot import the tests folder.
cloudpickle.register_pickle_by_value(durably_test_helpers)

# Fixtures of the real S3 (SeaweedFS) and GCS (fake-gcs-server) servers, for every test folder.
pytest_plugins = ["servers.seaweedfs", "servers.fake_gcs"]

STORAGE_KIND = os.environ.get("DURABLY_TEST_STORAGE", "file")
# Any Ray that a test (or a child driver) starts listens on loopback only, with a token.
os.environ.setdefault("DURABLY_RAY_NODE_IP", LOOPBACK_IP)
RayCluster.configure_client_auth(Path(tempfile.mkdtemp(prefix="durably-tests-")))


@pytest.fixture(scope="session")
def ray_node_env() -> dict[str, str]:
    """Environment added to every node of the session's Ray cluster; a test folder may override it."""
    return {}


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest, ray_node_env: dict[str, str]) -> Iterator[RayCluster]:
    """A real Ray head node started with `ray start`; this test process is connected to it."""
    import ray

    if STORAGE_KIND == "s3":
        request.getfixturevalue("s3_credentials")  # Ray workers inherit the credentials it exports

    cluster = _start_ray_cluster(env=ray_node_env)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.stop()


def _start_ray_cluster(attempts: int = 3, env: dict[str, str] | None = None) -> RayCluster:
    """Start the head; Ray gives a node 30 s to register, which a loaded machine can miss: retry."""
    for attempt in range(1, attempts + 1):
        cluster = RayCluster(env=env)
        try:
            cluster.wait_ready()
            return cluster
        # A raylet that gave up waiting for its slow-starting agents (Ray waits a fixed ~15 s per
        # agent port) leaves a head that ray.init cannot connect to: ConnectionError.
        except (RuntimeError, ConnectionError):
            cluster.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


#: Which executors the workflow tests run on (nox narrows this on the secondary Pythons).
EXECUTORS = [name for name in os.environ.get("DURABLY_TEST_EXECUTORS", "local,ray").split(",") if name]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    """Each workflow test runs on both executors: same semantics, same suite."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)


@pytest.fixture
def storage_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty storage location of the kind DURABLY_TEST_STORAGE names (file by default)."""
    if STORAGE_KIND == "file":
        return str(tmp_path / "storage")
    if STORAGE_KIND == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    factory = request.getfixturevalue(f"{STORAGE_KIND}_storage_url_factory")
    return str(factory())


@pytest.fixture
def wf(storage_url: str, executor: str) -> Any:
    """The workflow module, initialised on a fresh storage with the executor under test."""
    from durably import workflow

    workflow.init(storage=storage_url, executor=executor)
    return workflow


@pytest.fixture
def counter_dir(tmp_path: Path) -> Path:
    """A folder where steps record each execution as a file line (shared by all processes)."""
    folder = tmp_path / "counts"
    folder.mkdir()
    return folder
