"""Plugins: built-ins through the same hooks, entry-point discovery, filtering, failures, lifecycle hooks."""

from __future__ import annotations

import contextvars
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import durably
from durably import workflow
from durably._plugins import get_registry, register_plugin, reset_registry


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


def test_builtin_backends_and_executors_come_through_the_hooks(fresh_registry: None) -> None:
    registry = get_registry()
    assert {"file", "memory"} <= set(registry.storage_backends())
    assert {"ray", "local"} <= set(registry.executors())
    builtins = [info for info in registry.plugins if info.builtin]
    assert {"durably.storage._plugin", "durably.executors._plugin"} <= {info.name for info in builtins}


class Recorder:
    """An observability plugin that records every lifecycle hook call."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def _write(self, **fields: Any) -> None:
        with open(self.log, "a") as handle:
            handle.write(json.dumps({key: str(value) for key, value in fields.items()}) + "\n")

    @durably.hookimpl
    def durably_workflow_started(self, workflow_id: str, metadata: Any) -> None:
        self._write(hook="workflow_started", workflow_id=workflow_id)

    @durably.hookimpl
    def durably_workflow_finished(self, workflow_id: str, status: str, error: Any) -> None:
        self._write(hook="workflow_finished", workflow_id=workflow_id, status=status)

    @durably.hookimpl
    def durably_step_started(self, workflow_id: str, step_id: str, name: str, attempt: int) -> None:
        self._write(hook="step_started", step_id=step_id, attempt=attempt)

    @durably.hookimpl
    def durably_step_finished(self, workflow_id: str, step_id: str, name: str, duration: float) -> None:
        self._write(hook="step_finished", step_id=step_id)

    @durably.hookimpl
    def durably_step_retried(
        self, workflow_id: str, step_id: str, name: str, attempt: int, error: Any, delay: float
    ) -> None:
        self._write(hook="step_retried", step_id=step_id, attempt=attempt)

    @durably.hookimpl
    def durably_step_failed(self, workflow_id: str, step_id: str, name: str, error: Any) -> None:
        self._write(hook="step_failed", step_id=step_id)


@workflow.step(max_retries=1, retry_delay=0)
def fails_once(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        raise ValueError("first attempt")
    return "second"


@workflow.step(max_retries=0)
def always_fails() -> None:
    raise ValueError("no")


def test_lifecycle_hooks_see_a_run_with_a_retry_and_a_failure(fresh_registry: None, tmp_path: Path) -> None:
    log = tmp_path / "hooks.jsonl"
    register_plugin(Recorder(log), name="recorder")
    workflow.init(storage=str(tmp_path / "store"), executor="local")
    assert fails_once.step(str(tmp_path / "marker")).run(workflow_id="observed") == "second"
    with pytest.raises(workflow.WorkflowExecutionError):
        always_fails.step().run(workflow_id="observed-failure")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    hooks = [call["hook"] for call in calls]
    assert hooks == [
        "workflow_started",
        "step_started",
        "step_retried",
        "step_started",
        "step_finished",
        "workflow_finished",
        "workflow_started",
        "step_started",
        "step_failed",
        "workflow_finished",
    ]
    assert calls[5]["status"] == "SUCCESSFUL"
    assert calls[-1]["status"] == "FAILED"


#: What a tracing plugin would carry: the caller's current span, here a context variable's value.
CALLER = contextvars.ContextVar[str | None]("CALLER", default=None)


class CarriesTheCaller:
    """Carries ``CALLER`` from where a run is asked for, and records what the run's start is given."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, str], int]] = []

    @durably.hookimpl
    def durably_propagation_context(self, workflow_id: str | None) -> Mapping[str, str] | None:
        caller = CALLER.get()
        return None if caller is None else {"caller": caller}

    @durably.hookimpl
    def durably_workflow_started(self, workflow_id: str, context: Mapping[str, str]) -> None:
        self.started.append((workflow_id, dict(context), threading.get_ident()))


@workflow.step
def echo(value: str) -> str:
    return value


def test_workflow_started_gets_the_context_carried_from_where_run_async_was_called(
    fresh_registry: None, tmp_path: Path
) -> None:
    plugin = CarriesTheCaller()
    register_plugin(plugin, name="carries-the-caller")
    workflow.init(storage=str(tmp_path / "store"), executor="local")
    token = CALLER.set("request-7")
    try:
        pending = echo.step("x").run_async(workflow_id="carried")
    finally:
        CALLER.reset(token)
    assert pending.result() == "x"

    [(workflow_id, context, thread)] = plugin.started
    assert (workflow_id, context) == ("carried", {"caller": "request-7"})
    assert thread != threading.get_ident()  # driven on another thread, where CALLER is not set


PLUGIN_DIST = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.2.3"

[project.entry-points.durably]
{entry} = "{module}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
"""


def _make_distribution(root: Path, name: str, module: str, body: str) -> Path:
    folder = root / name
    (folder / module).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PLUGIN_DIST.format(name=name, entry=module, module=module))
    (folder / module / "__init__.py").write_text(body)
    return folder


GOOD_PLUGIN = """
from durably import hookimpl
from durably.storage import MemoryStorage

@hookimpl
def durably_storage_backends():
    return {"goodmem": lambda url: MemoryStorage("memory://" + url.split("://", 1)[1])}
"""

BROKEN_PLUGIN = "raise ImportError('this plugin is broken on purpose')\n"

PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from durably._plugins import get_registry
    registry = get_registry()
print(json.dumps({
    "schemes": sorted(registry.storage_backends()),
    "plugins": {
        info.name: [info.distribution, info.version, info.error]
        for info in registry.plugins
        if not info.builtin
    },
    "warnings": [str(item.message) for item in caught],
}))
"""


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with durably plus a good and a broken third-party plugin installed from source."""
    root = tmp_path_factory.mktemp("plugins")
    venv = root / "venv"
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    core = Path(__file__).parents[2] / "packages" / "core"
    good = _make_distribution(root, "durably-goodmem", "durably_goodmem", GOOD_PLUGIN)
    broken = _make_distribution(root, "durably-broken", "durably_broken", BROKEN_PLUGIN)
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), "-e", str(core), str(good), str(broken)],
        check=True,
    )
    return python


def _probe(python: Path, **env: str) -> dict[str, Any]:
    import os

    completed = subprocess.run(
        [str(python), "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**{k: v for k, v in os.environ.items() if k != "DURABLY_LOAD_PLUGINS"}, **env},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_installed_plugin_is_found_through_its_entry_point(plugin_venv: Path) -> None:
    found = _probe(plugin_venv)
    assert "goodmem" in found["schemes"]
    assert found["plugins"]["durably_goodmem"][:2] == ["durably-goodmem", "1.2.3"]


def test_a_plugin_that_fails_to_import_is_reported_not_fatal(plugin_venv: Path) -> None:
    found = _probe(plugin_venv)
    assert "broken on purpose" in found["plugins"]["durably_broken"][2]
    assert any("durably_broken" in message and "skipped" in message for message in found["warnings"])
    assert "goodmem" in found["schemes"]


def test_load_plugins_variable_limits_which_distributions_load(plugin_venv: Path) -> None:
    found = _probe(plugin_venv, DURABLY_LOAD_PLUGINS="durably-broken")
    assert "goodmem" not in found["schemes"]
    assert list(found["plugins"]) == ["durably_broken"]
    nothing = _probe(plugin_venv, DURABLY_LOAD_PLUGINS="")
    assert nothing["plugins"] == {}


def test_plugins_command_lists_plugins_with_distribution_version_and_what_they_provide(
    plugin_venv: Path,
) -> None:
    completed = subprocess.run(
        [str(plugin_venv.parent / "durably"), "plugins"], capture_output=True, text=True, check=True
    )
    output = completed.stdout
    assert "durably-goodmem 1.2.3" in output
    assert "storage: goodmem" in output
    assert "FAILED" in output and "broken on purpose" in output
    assert "storage: file, memory" in output


class ThreadsExecutor:
    """A third-party executor: local threads under another name (what it can do is an attribute)."""

    def __init__(self) -> None:
        from durably.executors._local import LocalExecutor

        self._inner = LocalExecutor()
        self.name = "threads"
        self.has_cluster_host = False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)


class ThreadsPlugin:
    @durably.hookimpl
    def durably_executors(self) -> dict[str, Any]:
        return {"threads": ThreadsExecutor}


@workflow.virtual_actor
class Tally:
    def __init__(self) -> None:
        self.count = 0

    def add(self) -> int:
        self.count += 1
        return self.count


def test_a_plugin_executor_is_used_by_what_it_declares_not_by_its_name(
    fresh_registry: None, tmp_path: Path
) -> None:
    register_plugin(ThreadsPlugin(), name="threads")
    workflow.init(storage=str(tmp_path / "store"), executor="threads")
    assert fails_once.step(str(tmp_path / "marker")).run(workflow_id="on-threads") == "second"
    tally = Tally.get_or_create("tally")
    assert tally.add.run() == 1
    assert tally.add.run_async().result() == 2  # no cluster host: a Future, not a ray.ObjectRef
