"""Ray's workflow-test fixtures (workflow_start_regular, shutdown_only, ...) on durably with a real Ray.

Ray's own test files in this folder run unchanged apart from their imports; this file gives them the
fixtures that Ray's conftest gave them, on a real Ray cluster started with `ray start` on loopback,
and deselects the tests listed in not_applicable.txt (printing each with its reason).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
# This session's own folder of global marks (ray_compat_utils reads it at import).
os.environ.setdefault("DURABLY_RAY_COMPAT_MARKS", tempfile.mkdtemp(prefix="durably-ray-compat-marks-"))

import ray_compat_utils  # noqa: E402
from servers.ray_cluster import RayCluster  # noqa: E402

NOT_APPLICABLE_FILE = HERE / "not_applicable.txt"
#: Logical CPUs of the shared test cluster. Ray's tests ask for 4, 8 or 16 CPUs (through
#: `indirect=True` parameters) so that their steps do not wait for each other: v1/test_wait.py
#: asks for 8 because steps of its first workflow still run (and hold CPUs) while the next one's
#: five steps must all start within seconds. On this 2-core machine more logical CPUs only add
#: worker processes, so they share one 8-CPU cluster, and so do the tests that ask for nothing
#: (16 gets 8). A test that asks for exactly 1 or 2 CPUs (it checks that a task
#: waits for CPUs) runs on the same cluster with a ballast actor holding the other CPUs, so exactly
#: the CPUs it asked for are free. One cluster for the session: starting one is the slow, fragile
#: part on a loaded machine (minutes at a load of 20), a ballast actor costs one worker process.
DEFAULT_NUM_CPUS = 8
EXACT_NUM_CPUS = (1, 2)
BALLAST_NAME = "ray-compat-ballast"
BALLAST_NAMESPACE = "ray-compat"
#: ray.init() keywords that Ray's tests pass to the fixtures and that a `ray start` node can honour.
CLUSTER_KEYWORDS = {"num_cpus", "resources"}
#: Ray's soft limit on live workers (RAY_num_workers_soft_limit; by default the CPU count): above
#: it, Ray kills each idle worker after a second. It counts every live worker, actors included,
#: and each virtual actor has a host process: Ray's virtual-actor tests leave about twenty on the
#: shared cluster (Ray's fixtures stopped the cluster after each test), which left no idle worker
#: for the wait tests after them. Room for those and for the idle ones: a test that runs more
#: steps at once than the cluster has CPUs (zero-CPU steps, a workflow.wait) then finds workers
#: started by an earlier test instead of starting new ones, each a Python start that takes
#: seconds on a loaded 2-core machine.
WORKER_SOFT_LIMIT = 64
#: How many workers the cluster starts through durably before the first workflow test (they
#: stay idle for the next tests): Ray starts a task's worker for the job that submits it, here
#: the engine actor's, so warming the pool from the driver's own tasks would not help. One per
#: CPU: Ray's wait tests run a step, five steps under a wait, and the wait's zero-CPU clock at
#: once, and give the steps seconds.
WARM_WORKERS = DEFAULT_NUM_CPUS
#: How long a test waits for the CPUs that steps of earlier tests still hold (a workflow a test
#: started and left running: Ray's fixtures stopped the cluster after each test, which ended it)
#: before the cluster is restarted under it.
LEFTOVER_GRACE_SECONDS = 10.0


class _Ballast:
    """Holds CPUs of the cluster (a detached actor, so it outlives a test's ray.shutdown())."""

    def __init__(self) -> None:
        self.cpus = 0

    def hold(self, cpus: int) -> None:
        import ray

        if cpus == self.cpus:
            return
        self.release()
        if cpus:

            class CpuHolder:  # defined here, so it is pickled by value: workers cannot import conftest
                def ready(self) -> bool:
                    return True

            holder = ray.remote(num_cpus=cpus)(CpuHolder).options(
                name=BALLAST_NAME, namespace=BALLAST_NAMESPACE, lifetime="detached"
            )
            ray.get(holder.remote().ready.remote())  # placed: its CPUs are taken
            self.cpus = cpus

    def release(self) -> None:
        import ray

        if self.cpus and ray.is_initialized():
            with contextlib.suppress(ValueError):  # already gone with its cluster
                ray.kill(ray.get_actor(BALLAST_NAME, namespace=BALLAST_NAMESPACE))
            # ray.kill returns at once; the CPUs are free once the actor is gone.
            while _ballast_alive():
                time.sleep(0.05)
        self.cpus = 0


def _ballast_alive() -> bool:
    import ray

    try:
        ray.get_actor(BALLAST_NAME, namespace=BALLAST_NAMESPACE)
    except ValueError:
        return False
    return True


class _ClusterPool:
    """At most one test Ray cluster at a time; a test that asks for other resources gets a fresh one."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch  # the warm-up's storage and files, a folder per cluster
        self._cluster: RayCluster | None = None
        self._key: tuple[int, str, int] | None = None
        self._ballast = _Ballast()
        self._warm = False

    def connect(self, params: dict[str, Any]) -> RayCluster:
        import ray

        unknown = set(params) - CLUSTER_KEYWORDS
        if unknown:
            raise ValueError(
                f"ray-compat fixtures cannot start a cluster with {sorted(unknown)}; "
                f"they understand {sorted(CLUSTER_KEYWORDS)} (add the keyword to conftest.py)"
            )
        key = self.key_of(params)
        if self._key is not None and key[:2] == self._key[:2] and not self._cpus_come_free():
            self._key = None  # earlier tests' steps hold CPUs: a fresh cluster, as Ray's fixtures gave
        if self._key is None or key[:2] != self._key[:2]:  # the ballast alone changes without a restart
            ray.shutdown()
            self.stop()
            self._start(num_cpus=key[0], resources=key[1])
        self._key = key
        assert self._cluster is not None
        if not ray.is_initialized():
            ray.init(address=self._cluster.address, log_to_driver=False)
        self._ballast.hold(key[2])
        return self._cluster

    def _cpus_come_free(self) -> bool:
        """Whether every CPU not held by the ballast is free, or comes free within the grace period."""
        import ray

        if not ray.is_initialized():
            assert self._cluster is not None
            ray.init(address=self._cluster.address, log_to_driver=False)
        deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
        while True:
            free = ray.available_resources().get("CPU", 0.0)
            if free + self._ballast.cpus >= DEFAULT_NUM_CPUS:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    @staticmethod
    def key_of(params: dict[str, Any]) -> tuple[int, str, int]:
        """What a test's ray.init() keywords get: (cluster CPUs, resources as JSON, CPUs held back)."""
        asked = int(params.get("num_cpus", DEFAULT_NUM_CPUS))
        return (
            DEFAULT_NUM_CPUS,
            json.dumps(params.get("resources", {}), sort_keys=True),
            DEFAULT_NUM_CPUS - asked if asked in EXACT_NUM_CPUS else 0,
        )

    def _start(self, num_cpus: int, resources: str, attempts: int = 10) -> None:
        """A loaded machine can miss Ray's 30 s node registration or GCS timeouts: retry."""
        for attempt in range(1, attempts + 1):
            # Held before it is ready, so that a test timeout during start-up still stops it.
            self._cluster = RayCluster(
                num_cpus=num_cpus,
                resources=resources,
                env={"RAY_num_workers_soft_limit": str(WORKER_SOFT_LIMIT)},
            )
            try:
                self._cluster.wait_ready(timeout=300)
                return
            except (RuntimeError, ConnectionError):
                self.stop()
                if attempt == attempts:
                    raise

    @property
    def address(self) -> str:
        return self.connect({}).address

    def warm(self) -> None:
        """Start WARM_WORKERS workers through durably once per cluster (on a storage of its own).

        Tests that start several steps at once (Ray's wait tests give theirs seconds) then find
        workers ready rather than starting them all together on a loaded machine.
        """
        if self._warm:
            return
        import ray

        from durably import workflow

        def meet(folder: str, index: int, count: int) -> int:
            """Stay until every warm-up step runs: each holds a worker of its own meanwhile."""
            import pathlib
            import time

            (pathlib.Path(folder) / str(index)).touch()
            while len(list(pathlib.Path(folder).iterdir())) < count:
                time.sleep(0.02)
            return index

        def gather(*indexes: int) -> int:
            return len(indexes)

        storage = Path(tempfile.mkdtemp(dir=self._scratch))
        folder = storage / "met"
        folder.mkdir()
        # Zero CPUs: a ballast may hold CPUs; the workers started serve steps of any size.
        step = ray.remote(num_cpus=0)(meet)
        dag = ray.remote(num_cpus=0)(gather).bind(
            *[step.bind(str(folder), index, WARM_WORKERS) for index in range(WARM_WORKERS)]
        )
        workflow.init(storage=str(storage / "workflows"), executor="ray")
        workflow.run(dag, workflow_id="warm-up")
        self._warm = True

    def stop(self) -> None:
        self._warm = False  # its workers go with the cluster
        self._ballast.cpus = 0  # it goes with its cluster
        if self._cluster is not None:
            self._cluster.stop()
        self._cluster, self._key = None, None


@pytest.fixture(scope="session")
def _ray_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ClusterPool]:
    import ray

    pool = _ClusterPool(tmp_path_factory.mktemp("warm-up"))
    try:
        yield pool
    finally:
        ray.shutdown()
        pool.stop()


def _start_workflows(pool: _ClusterPool, params: dict[str, Any], storage: Path) -> str:
    """What Ray's `_workflow_start` did: a connected driver, clean marks, workflow.init on fresh storage."""
    from durably import workflow

    cluster = pool.connect(params)
    pool.warm()
    ray_compat_utils.clear_marks()
    workflow.init(storage=str(storage), executor="ray")
    return cluster.address


@pytest.fixture
def workflow_start_regular(
    _ray_pool: _ClusterPool, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Ray: a fresh ray.init() (with the test's ray.init kwargs) and workflow.init() on fresh storage."""
    storage = tmp_path / "workflow-storage"
    # Ray's storage belonged to the cluster, so drivers a test starts saw it too.
    monkeypatch.setenv("DURABLY_STORAGE", str(storage))
    # The driver stays connected for the next test (connecting costs seconds on a loaded
    # machine); durably's state is per storage, and each test gets a fresh one.
    return _start_workflows(_ray_pool, getattr(request, "param", {}), storage)


@pytest.fixture(scope="module")
def workflow_start_regular_shared(
    _ray_pool: _ClusterPool, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """Ray: like workflow_start_regular, shared by every test of one module."""
    storage = tmp_path_factory.mktemp("workflow-storage")
    return _start_workflows(_ray_pool, getattr(request, "param", {}), storage)


@pytest.fixture
def workflow_start_cluster(_ray_pool: _ClusterPool, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Ray: `ray start --head` and a storage URL; the test connects itself (ray.init(address))."""
    import ray

    ray.shutdown()
    address = _ray_pool.address
    ray.shutdown()
    storage = tmp_path / "workflow-storage"
    storage.mkdir()
    ray_compat_utils.clear_marks()
    os.environ["DURABLY_STORAGE"] = str(storage)
    try:
        yield address, str(storage)
    finally:
        os.environ.pop("DURABLY_STORAGE", None)
        ray.shutdown()


@pytest.fixture
def _default_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where durably's workflow.init() with no storage argument writes (Ray used its temp dir)."""
    storage = tmp_path / "default-workflow-storage"
    storage.mkdir()
    monkeypatch.setenv("DURABLY_STORAGE", str(storage))
    return storage


@pytest.fixture
def shutdown_only(
    _ray_pool: _ClusterPool, _default_storage: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Ray: no Ray running when the test starts; whatever it starts is shut down after it.

    RAY_ADDRESS points at the test cluster so that a Ray started by the workflow API joins it
    (on loopback) instead of starting one more cluster on this 2-core machine.
    """
    import ray

    monkeypatch.setenv("RAY_ADDRESS", _ray_pool.address)
    ray.shutdown()
    yield
    ray.shutdown()


@pytest.fixture
def ray_start_regular(_ray_pool: _ClusterPool, _default_storage: Path, request: pytest.FixtureRequest) -> str:
    """Ray: a connected driver (with the test's ray.init kwargs), no workflow.init()."""
    return _ray_pool.connect(getattr(request, "param", {})).address


@pytest.fixture(scope="module")
def ray_start_regular_shared(_ray_pool: _ClusterPool, request: pytest.FixtureRequest) -> str:
    """Ray: one connected driver for the module, no workflow.init()."""
    return _ray_pool.connect(getattr(request, "param", {})).address


def _not_applicable() -> dict[str, str]:
    """not_applicable.txt: `file.py::test_name  reason` per line (below this folder); `#` comments.

    A line `file.py  reason` makes the whole file not applicable: it is not even imported.
    """
    table: dict[str, str] = {}
    for number, line in enumerate(NOT_APPLICABLE_FILE.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        test, _, reason = line.partition(" ")
        if not ("::" in test or test.endswith(".py")) or not reason.strip():
            raise ValueError(
                f"{NOT_APPLICABLE_FILE.name}:{number}: want `file.py::test_name  reason` "
                f"(or `file.py  reason` for a whole file), got {line!r}"
            )
        table[test] = reason.strip()
    return table


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A file listed whole in not_applicable.txt is not imported (it may not even import)."""
    if HERE not in collection_path.parents or collection_path.suffix != ".py":
        return None
    reason = _not_applicable().get(collection_path.relative_to(HERE).as_posix())
    if reason is None:
        return None
    config.stash.setdefault(_IGNORED, []).append((collection_path.relative_to(HERE).as_posix(), reason))
    return True


def _test_key(item: pytest.Item) -> str:
    """`file.py::test_name` or `v1/file.py::test_name` (parameters dropped) for an item of this folder."""
    return (
        f"{Path(str(item.fspath)).relative_to(HERE).as_posix()}::{getattr(item, 'originalname', item.name)}"
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    table = _not_applicable()
    ours = [item for item in items if HERE in Path(str(item.fspath)).parents]
    if not ours:
        return
    # Steps defined at module level in Ray's test files run on Ray workers, which cannot import them.
    for module in {item.module for item in ours if isinstance(item, pytest.Function) and item.module}:
        cloudpickle.register_pickle_by_value(module)
    cloudpickle.register_pickle_by_value(ray_compat_utils)
    collected_files = {_test_key(item).split("::")[0] for item in ours}
    known = {_test_key(item) for item in ours}
    stale = [test for test in table if test.split("::")[0] in collected_files and test not in known]
    if stale:
        raise pytest.UsageError(f"{NOT_APPLICABLE_FILE.name} names tests that do not exist: {stale}")
    # Tests that need the same cluster run together: a new cluster is the slow part of the suite.
    # The sort is stable, so each file's tests keep their order within a cluster size.
    keys = sorted({_cluster_key(item) for item in ours})
    items.sort(key=lambda item: keys.index(_cluster_key(item)) if item in ours else -1)
    reasons = {item: _reason_not_run(item, table) for item in ours}
    deselected = [item for item, reason in reasons.items() if reason]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    config.stash[_DESELECTED] = [(item.nodeid, str(reasons[item])) for item in deselected]
    config.stash[_COLLECTED] = [item.nodeid for item in ours]


#: The fixtures whose indirect parameter is ray.init() keywords (a cluster's size).
CLUSTER_FIXTURES = (
    "workflow_start_regular",
    "workflow_start_regular_shared",
    "ray_start_regular",
    "ray_start_regular_shared",
)


def _cluster_key(item: pytest.Item) -> tuple[int, str, int]:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in CLUSTER_FIXTURES:
        if isinstance(params.get(name), dict):
            return _ClusterPool.key_of(params[name])
    return _ClusterPool.key_of({})


def _reason_not_run(item: pytest.Item, table: dict[str, str]) -> str | None:
    """Why a test does not run here: listed in not_applicable.txt, or skipped by Ray itself.

    Ray's own `@pytest.mark.skip` stays in its file (only imports change); the test is then
    deselected with Ray's reason, so that nothing in this suite reports as skipped.
    """
    if _test_key(item) in table:
        return table[_test_key(item)]
    ray_skip = item.get_closest_marker("skip")
    if ray_skip is not None:
        return f"{RAY_SKIP}: " + str(ray_skip.kwargs.get("reason", *ray_skip.args[:1] or ["(no reason)"]))
    return None


_DESELECTED = pytest.StashKey[list[tuple[str, str]]]()
_COLLECTED = pytest.StashKey[list[str]]()
_IGNORED = pytest.StashKey[list[tuple[str, str]]]()
RAY_SKIP = "skipped by Ray itself"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    deselected = config.stash.get(_DESELECTED, [])
    if deselected:
        terminalreporter.section(f"not applicable to durably ({len(deselected)}, see not_applicable.txt)")
        for nodeid, reason in deselected:
            terminalreporter.write_line(f"{nodeid}: {reason}")
    for name, reason in config.stash.get(_IGNORED, []):
        terminalreporter.write_line(f"{name} (whole file, not imported): {reason}")
    _write_table(terminalreporter, config)


def _file_of(nodeid: str) -> str:
    """`v1/test_x.py` for a node id of this folder (as run from the repository root)."""
    path = nodeid.split("::")[0]
    return Path(path).resolve().relative_to(HERE).as_posix() if "/" in path else path


def _write_table(terminalreporter: Any, config: pytest.Config) -> None:
    """Per file: collected, not applicable, Ray's own skip, applicable, passed, failed (Markdown)."""
    rows: dict[str, list[int]] = {}
    for nodeid in config.stash.get(_COLLECTED, []):
        rows.setdefault(_file_of(nodeid), [0] * 6)[0] += 1
    for nodeid, reason in config.stash.get(_DESELECTED, []):
        rows[_file_of(nodeid)][2 if reason.startswith(RAY_SKIP) else 1] += 1
    outcomes: dict[str, str] = {}
    broken: list[str] = []
    for kind in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(kind, []):
            if report.when == "collect":  # a file that does not import
                broken.append(_file_of(report.nodeid))
            elif (kind != "passed" or report.when == "call") and outcomes.get(report.nodeid) != "failed":
                outcomes[report.nodeid] = "passed" if kind == "passed" else "failed"
    for nodeid, outcome in outcomes.items():
        rows.setdefault(_file_of(nodeid), [0] * 6)[4 if outcome == "passed" else 5] += 1
    if not rows and not broken:
        return
    terminalreporter.section("per file (tests/ray-compat/README.md)")
    terminalreporter.write_line(
        "| file | collected | not applicable | Ray's own skip | applicable | passed | failed |"
    )
    terminalreporter.write_line("|---|---|---|---|---|---|---|")
    totals = [0] * 6
    for name in sorted(rows):
        row = rows[name]
        row[3] = row[0] - row[1] - row[2]
        totals = [total + value for total, value in zip(totals, row, strict=True)]
        terminalreporter.write_line(f"| {name} | " + " | ".join(map(str, row)) + " |")
    terminalreporter.write_line("| **all** | " + " | ".join(f"**{value}**" for value in totals) + " |")
    for name in sorted(set(broken)):
        terminalreporter.write_line(f"{name}: does not import (collection error)")
    for name, _reason in config.stash.get(_IGNORED, []):
        terminalreporter.write_line(f"{name}: not applicable as a whole (not imported)")
