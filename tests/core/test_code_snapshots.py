"""Code snapshots: a workflow runs the code captured at its first run, on resume too, until upgraded.

On a cluster started with `ray start`. The step code imports ``codever`` from the snapshot's
working_dir only (no other process of the test has it on its path); the folder changes between
runs, as a deploy changes the cluster's code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from durably import workflow
from durably._resolve import open_storage
from durably._snapshots import package_uri
from durably._store import code_package_key
from durably.actors._ray_host import stop_host
from durably.cli import cli
from durably.workflow import WorkflowError, WorkflowExecutionError

pytestmark = pytest.mark.multinode


def write_version(folder: Path, version: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "codever.py").write_text(f"VERSION = {version!r}\n")


@workflow.step
def first_version() -> str:
    import codever  # type: ignore[import-not-found]

    return str(codever.VERSION)


@workflow.step
def second_version(earlier: str, gate: str) -> list[str]:
    import codever

    if not os.path.exists(gate):
        raise RuntimeError("the gate is closed")
    return [earlier, str(codever.VERSION)]


@workflow.virtual_actor
class Versions:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def record(self) -> list[str]:
        import codever

        self.seen.append(str(codever.VERSION))
        return self.seen

    def version_by_step(self) -> Any:
        return first_version.step()  # a sub-workflow of the call: its step runs the actor's snapshot

    def __getstate__(self) -> list[str]:
        return self.seen

    def __setstate__(self, state: list[str]) -> None:
        self.seen = state


@pytest.fixture
def storage(ray_cluster: Any, tmp_path: Path) -> Iterator[str]:
    """A fresh storage; afterwards the process is back to a workflow setup without a snapshot."""
    url = str(tmp_path / "storage")
    yield url
    workflow.init(storage=url, executor="ray")


def start_stopped_at_the_gate(storage: str, code: Path, gate: Path, workflow_id: str) -> None:
    """Run the two-step workflow with v1 captured: the first step finishes, the second fails."""
    write_version(code, "v1")
    workflow.init(storage=storage, executor="ray", runtime_env={"working_dir": str(code)})
    with pytest.raises(WorkflowExecutionError, match="the gate is closed"):
        second_version.step(first_version.step(), str(gate)).run(workflow_id=workflow_id)
    assert workflow.get_output(workflow_id, name="first_version") == "v1"


def forget_packages_on_the_cluster(storage: str) -> None:
    """Remove the snapshot's packages from the cluster, as a new cluster would not have them."""
    from ray.experimental.internal_kv import _internal_kv_del

    for key in open_storage(storage).list("code"):
        _internal_kv_del(package_uri(Path(key).stem))


def test_a_resumed_workflow_runs_its_unfinished_steps_with_the_code_of_its_first_run(
    storage: str, tmp_path: Path
) -> None:
    code, gate = tmp_path / "code", tmp_path / "gate"
    start_stopped_at_the_gate(storage, code, gate, "snap-resume")
    write_version(code, "v2")  # the deploy: the folder now holds new code
    forget_packages_on_the_cluster(storage)
    gate.touch()
    workflow.init(storage=storage, executor="ray")  # a new driver, without any runtime_env
    assert workflow.resume("snap-resume") == ["v1", "v1"]


def test_resuming_with_an_upgrade_runs_the_unfinished_steps_with_the_current_code(
    storage: str, tmp_path: Path
) -> None:
    code, gate = tmp_path / "code", tmp_path / "gate"
    start_stopped_at_the_gate(storage, code, gate, "snap-upgrade")
    write_version(code, "v2")
    gate.touch()
    workflow.init(storage=storage, executor="ray")
    assert workflow.resume("snap-upgrade", runtime_env="current") == ["v1", "v2"]


def test_durably_resume_upgrade_code_runs_the_unfinished_steps_with_the_current_code(
    storage: str, tmp_path: Path
) -> None:
    code, gate = tmp_path / "code", tmp_path / "gate"
    start_stopped_at_the_gate(storage, code, gate, "snap-cli")
    write_version(code, "v2")
    gate.touch()
    arguments = ["resume", "snap-cli", "--storage", storage, "--executor", "ray", "--upgrade-code", "--json"]
    result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["v1", "v2"]


def test_resuming_when_the_stored_code_is_gone_fails_with_what_to_do_before_any_step_runs(
    storage: str, tmp_path: Path
) -> None:
    code, gate = tmp_path / "code", tmp_path / "gate"
    start_stopped_at_the_gate(storage, code, gate, "snap-lost")
    forget_packages_on_the_cluster(storage)
    open_storage(storage).delete_prefix("code")
    gate.touch()
    workflow.init(storage=storage, executor="ray")
    with pytest.raises(WorkflowError, match="missing from storage; resume with runtime_env='current'"):
        workflow.resume("snap-lost")
    assert workflow.get_status("snap-lost") == workflow.FAILED  # as the gate left it: nothing ran


def test_identical_code_is_stored_once(storage: str, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_version(code, "v1")
    workflow.init(storage=storage, executor="ray", runtime_env={"working_dir": str(code)})
    assert first_version.step().run(workflow_id="once-a") == "v1"
    write_version(code, "v1")  # the same content, written again: only the file time changed
    os.utime(code / "codever.py", (1_000_000_000, 1_000_000_000))
    assert first_version.step().run(workflow_id="once-b") == "v1"
    stored = list(open_storage(storage).list("code"))
    assert len(stored) == 1 and stored[0] == code_package_key(Path(stored[0]).stem)


def test_a_virtual_actor_call_runs_with_the_code_captured_when_the_actor_was_created(
    storage: str, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    write_version(code, "v1")
    workflow.init(storage=storage, executor="ray", runtime_env={"working_dir": str(code)})
    actor = Versions.get_or_create("snap-actor")
    assert actor.record.run() == ["v1"]
    write_version(code, "v2")
    stop_host(actor.target)  # the next call starts a new Ray host, on a cluster without the package
    forget_packages_on_the_cluster(storage)
    workflow.init(storage=storage, executor="ray")
    assert workflow.get_actor("snap-actor").record.run() == ["v1", "v1"]


@ray.remote
def ray_version() -> str:
    import codever

    return str(codever.VERSION)


@workflow.step
def environment_flag() -> str | None:
    return os.environ.get("SNAPSHOT_FLAG")


def test_a_ray_dag_run_with_its_own_runtime_env_runs_under_it(storage: str, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_version(code, "v1")
    workflow.init(storage=storage, executor="ray")
    assert workflow.run(ray_version.bind(), workflow_id="dag", runtime_env={"working_dir": str(code)}) == "v1"


def test_recorded_env_vars_are_set_for_the_steps(storage: str) -> None:
    workflow.init(storage=storage, executor="ray", runtime_env={"env_vars": {"SNAPSHOT_FLAG": "on"}})
    assert environment_flag.step().run(workflow_id="env-vars") == "on"


def test_a_step_returned_by_a_virtual_actor_call_runs_with_the_actors_code(
    storage: str, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    write_version(code, "v1")
    workflow.init(storage=storage, executor="ray", runtime_env={"working_dir": str(code)})
    Versions.get_or_create("snap-actor-step")
    write_version(code, "v2")
    workflow.init(storage=storage, executor="ray")
    assert workflow.get_actor("snap-actor-step").version_by_step.run() == "v1"


def test_a_working_dir_that_does_not_exist_is_refused_at_init(storage: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not an existing folder"):
        workflow.init(storage=storage, executor="ray", runtime_env={"working_dir": str(tmp_path / "missing")})


def test_a_runtime_env_with_the_local_executor_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    with pytest.raises(ValueError, match="runtime_env needs the ray executor"):
        workflow.init(storage=str(storage), executor="local", runtime_env={"working_dir": str(tmp_path)})
    assert not storage.exists()


def test_unknown_runtime_env_keys_are_refused_with_the_supported_ones(storage: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'image_uri'.*supported: working_dir, py_modules"):
        workflow.init(storage=storage, executor="ray", runtime_env={"image_uri": "python:3.11"})


def test_a_bad_runtime_env_of_one_run_is_refused_before_the_workflow_is_stored(
    storage: str, tmp_path: Path
) -> None:
    workflow.init(storage=storage, executor="ray")
    with pytest.raises(ValueError, match="is not an existing folder"):
        first_version.step().run(workflow_id="never", runtime_env={"working_dir": str(tmp_path / "missing")})
    assert not open_storage(storage).exists("workflows/never/meta")
