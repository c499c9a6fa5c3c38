"""The durably command line, used as an operator would: on a real storage with finished, failed and
running workflows, reading what it prints and the exit codes scripts rely on."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import durably
from durably import workflow
from durably._inspect import workflow_store
from durably._plugins import register_plugin, reset_registry
from durably.cli import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, cli, main

WAIT = 60.0


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step(max_retries=0)
def gate(folder: str) -> int:
    if not Path(folder, "open").exists():
        raise RuntimeError("the gate is closed")
    return 2


@workflow.step
def hold(folder: str) -> str:
    deadline = time.monotonic() + WAIT
    while not Path(folder, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@workflow.step
def countdown(n: int) -> Any:
    return "liftoff" if n == 0 else countdown.step(n - 1)


def _driver_holds_lease(workflow_id: str) -> bool:
    record = workflow_store(workflow_id).load_status_meta() or {}
    return record.get("status") == workflow.WorkflowStatus.RUNNING


@pytest.fixture
def store(storage_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A storage with one SUCCESSFUL, one FAILED and one RUNNING workflow (local executor)."""
    workflow.init(storage=storage_url, executor="local")
    add.step(1, add.step(2, 3)).run(workflow_id="good", metadata={"team": "ops"})
    with pytest.raises(workflow.WorkflowExecutionError):
        add.step(1, gate.step(str(tmp_path))).run(workflow_id="bad")
    running = hold.step(str(tmp_path)).run_async(workflow_id="busy")
    deadline = time.monotonic() + WAIT
    # get_status says RUNNING from the start call on; the stored RUNNING is written once the
    # driver holds the lease, which is what a CLI process (with its own host) can see.
    while not _driver_holds_lease("busy") and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield {"storage": storage_url, "folder": tmp_path}
    finally:
        (tmp_path / "release").touch()
        concurrent.futures.wait([running], timeout=WAIT)


def run(*args: str, storage: str | None = None) -> Result:
    extra = ["--storage", storage] if storage is not None else []
    return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False, env={"COLUMNS": "150"})


# -- list ----------------------------------------------------------------------------------------
def test_list_prints_a_table_of_ids_statuses_and_steps(store: dict[str, Any]) -> None:
    result = run("list", storage=store["storage"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "CREATED", "UPDATED", "STEPS", "DURATION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["good"][1] == "SUCCESSFUL" and "2/2" in rows["good"]
    assert rows["bad"][1] == "FAILED" and "0/2" in rows["bad"]
    assert rows["busy"][1] == "RUNNING" and "0/1" in rows["busy"]


LONG_ID = "nightly-billing-reconciliation-eu-west-1-2026-11-27-run-0042"


def _list_at_width(storage: str, columns: int) -> list[str]:
    result = CliRunner().invoke(
        cli, ["list", "--storage", storage], catch_exceptions=False, env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_list_on_an_80_column_terminal_keeps_ids_whole_and_drops_columns(store: dict[str, Any]) -> None:
    assert len(LONG_ID) == 60
    add.step(1, 2).run(workflow_id=LONG_ID)
    lines = _list_at_width(store["storage"], 80)
    assert all(len(line) <= 80 for line in lines), lines
    (row,) = [line.split() for line in lines if LONG_ID in line]
    assert row[:2] == [LONG_ID, "SUCCESSFUL"]
    assert lines[0].split()[:2] == ["ID", "STATUS"] and "UPDATED" not in lines[0]


def test_list_keeps_an_id_wider_than_the_terminal_on_one_line(store: dict[str, Any]) -> None:
    add.step(1, 2).run(workflow_id=LONG_ID)
    lines = _list_at_width(store["storage"], 40)
    (row,) = [line.split() for line in lines if LONG_ID in line]
    assert row[:2] == [LONG_ID, "SUCCESSFUL"]


def test_list_json_is_the_page_and_its_cursor(store: dict[str, Any]) -> None:
    result = run("list", "--json", "--limit", "2", storage=store["storage"])
    page = json.loads(result.output)
    assert [item["workflow_id"] for item in page["workflows"]] == ["good", "busy"]
    assert page["next_cursor"] == "busy"
    rest = json.loads(run("list", "--json", "--after", "busy", storage=store["storage"]).output)
    assert [item["workflow_id"] for item in rest["workflows"]] == ["bad"]
    assert rest["next_cursor"] is None


def test_list_says_how_to_get_the_next_page(store: dict[str, Any]) -> None:
    result = run("list", "--limit", "1", storage=store["storage"])
    assert "durably list --after good" in result.output


def test_list_filters_by_status_and_prefix(store: dict[str, Any]) -> None:
    failed = json.loads(run("list", "--json", "--status", "failed", storage=store["storage"]).output)
    assert [item["workflow_id"] for item in failed["workflows"]] == ["bad"]
    prefixed = json.loads(run("list", "--json", "--prefix", "go", storage=store["storage"]).output)
    assert [item["workflow_id"] for item in prefixed["workflows"]] == ["good"]


def test_list_since_takes_a_duration_ago_or_a_date(store: dict[str, Any]) -> None:
    recent = json.loads(run("list", "--json", "--since", "1h", storage=store["storage"]).output)
    assert len(recent["workflows"]) == 3
    future = json.loads(run("list", "--json", "--since", "2999-01-01", storage=store["storage"]).output)
    assert future["workflows"] == []


def test_a_bad_time_is_a_usage_error(store: dict[str, Any]) -> None:
    result = run("list", "--since", "yesterday-ish", storage=store["storage"])
    assert result.exit_code == EXIT_USAGE
    assert "ISO date/time" in result.output


def test_an_unknown_status_is_a_usage_error(store: dict[str, Any]) -> None:
    result = run("list", "--status", "DONE", storage=store["storage"])
    assert result.exit_code == EXIT_USAGE
    assert "'DONE' is not one of" in result.output and "successful" in result.output.lower()


# -- show, status, output ------------------------------------------------------------------------
def test_show_of_a_failed_workflow_prints_the_error_its_traceback_and_the_step_tree(
    store: dict[str, Any],
) -> None:
    result = run("show", "bad", storage=store["storage"])
    assert result.exit_code == 0, result.output
    assert "FAILED" in result.output
    assert "RuntimeError: the gate is closed" in result.output
    assert "Traceback (most recent call last)" in result.output and ", in gate" in result.output
    tree = result.output[result.output.index("steps of bad") :]
    assert "gate" in tree and "FAILED" in tree and "attempts 1" in tree
    assert "add" in tree and "PENDING" in tree


def test_show_json_nests_continuations_under_their_step(store: dict[str, Any]) -> None:
    countdown.step(2).run(workflow_id="count")
    detail = json.loads(run("show", "--json", "count", storage=store["storage"]).output)
    (top,) = detail["steps"]
    assert top["name"] == "countdown"
    assert top["children"][0]["children"][0]["status"] == "SUCCESSFUL"


def test_show_prints_a_continuation_loop_flat(store: dict[str, Any]) -> None:
    countdown.step(50).run(workflow_id="loop")
    lines = run("show", "loop", storage=store["storage"]).output.splitlines()
    steps = [line for line in lines if "countdown" in line]
    assert len(steps) == 51
    links = [line for line in steps if "↪ continued as" in line]
    assert len(links) == 50
    assert len({line.index("↪") for line in links}) == 1  # every link of the chain at one depth
    assert max(len(line) - len(line.lstrip(" │├└─")) for line in lines) < 12


def test_show_prints_a_loop_longer_than_the_json_nesting_limit_whole(store: dict[str, Any]) -> None:
    countdown.step(80).run(workflow_id="long-loop")  # the read model nests 64 levels by default
    output = run("show", "long-loop", storage=store["storage"]).output
    assert output.count("↪ continued as") == 80
    assert "step tree cut" not in output


@workflow.step
def split(n: int) -> Any:
    return add.step(add.step(n, 1), 1)


def test_show_nests_a_sub_graphs_other_steps_above_its_output(store: dict[str, Any]) -> None:
    split.step(1).run(workflow_id="split")
    lines = run("show", "split", storage=store["storage"]).output.splitlines()
    (top,) = [line for line in lines if "── split" in line]
    inner, link = [line for line in lines if " add" in line]
    assert "↪ continued as" in link and "↪" not in inner
    assert inner.index("add") > top.index("split") and link.index("↪") > top.index("split")
    assert lines.index(inner) < lines.index(link)


def test_show_prints_metadata(store: dict[str, Any]) -> None:
    result = run("show", "good", storage=store["storage"])
    assert '{"team": "ops"}' in result.output


def test_unknown_workflow_exits_with_not_found(store: dict[str, Any]) -> None:
    for command in ("show", "status", "output", "delete", "cancel"):
        result = run(command, "nosuch", storage=store["storage"])
        assert result.exit_code == EXIT_NOT_FOUND, (command, result.output)
        assert "nosuch" in result.output


def test_status_prints_the_status(store: dict[str, Any]) -> None:
    assert run("status", "bad", storage=store["storage"]).output.strip() == "FAILED"
    summary = json.loads(run("status", "--json", "good", storage=store["storage"]).output)
    assert (summary["status"], summary["steps_finished"]) == ("SUCCESSFUL", 2)


def test_output_prints_the_workflow_or_a_step_output(store: dict[str, Any]) -> None:
    assert run("output", "good", storage=store["storage"]).output.strip() == "6"
    assert run("output", "good", "--step", "add", storage=store["storage"]).output.strip() == "5"
    assert json.loads(run("output", "--json", "good", storage=store["storage"]).output) == 6


def test_output_of_a_failed_workflow_exits_failed(store: dict[str, Any]) -> None:
    result = run("output", "bad", storage=store["storage"])
    assert result.exit_code == EXIT_FAILED
    assert "no output" in result.output


# -- actions -------------------------------------------------------------------------------------
def test_resume_runs_a_failed_workflow_to_its_output(store: dict[str, Any]) -> None:
    (store["folder"] / "open").touch()
    result = run("resume", "bad", storage=store["storage"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "3"
    assert workflow.get_status("bad") == workflow.WorkflowStatus.SUCCESSFUL


def test_resume_that_fails_again_exits_failed(store: dict[str, Any]) -> None:
    result = run("resume", "bad", storage=store["storage"])
    assert result.exit_code == EXIT_FAILED
    assert "the gate is closed" in result.output


def test_cancel_stops_a_running_workflow(store: dict[str, Any]) -> None:
    result = run("cancel", "busy", storage=store["storage"])
    assert result.exit_code == 0, result.output
    assert run("status", "busy", storage=store["storage"]).output.strip() == "CANCELED"


def test_delete_removes_a_finished_workflow(store: dict[str, Any]) -> None:
    assert run("delete", "good", storage=store["storage"]).exit_code == 0
    assert run("show", "good", storage=store["storage"]).exit_code == EXIT_NOT_FOUND


def test_delete_of_a_running_workflow_exits_failed(store: dict[str, Any]) -> None:
    result = run("delete", "busy", storage=store["storage"])
    assert result.exit_code == EXIT_FAILED
    assert "already running" in result.output


@workflow.step
def receive(event: Any) -> Any:
    return event


def test_send_event_delivers_a_json_payload(store: dict[str, Any]) -> None:
    waiting = receive.step(workflow.wait_for_event(workflow.ExternalEvent, "go")).run_async(
        workflow_id="waiter"
    )
    result = run("send-event", "waiter", "go", '{"n": 1}', storage=store["storage"])
    assert result.exit_code == 0, result.output
    assert waiting.result(timeout=WAIT) == {"n": 1}


def test_send_event_with_bad_json_is_a_usage_error(store: dict[str, Any]) -> None:
    result = run("send-event", "busy", "go", "{not json", storage=store["storage"])
    assert result.exit_code == EXIT_USAGE
    assert "is not JSON" in result.output


@workflow.virtual_actor
class Tally:
    def __init__(self) -> None:
        self.total = 0

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total


def test_actors_list_and_show(store: dict[str, Any]) -> None:
    Tally.get_or_create("tally").add.run(4)
    listing = run("actors", "list", storage=store["storage"]).output
    assert listing.splitlines()[1].split()[:3] == ["tally", "Tally", "1"]
    shown = run("actors", "show", "tally", "--state", storage=store["storage"]).output
    assert "'total': 4" in shown and "add" in shown
    assert run("actors", "show", "nobody", storage=store["storage"]).exit_code == EXIT_NOT_FOUND


def test_gc_dry_run_names_what_it_would_delete_and_deletes_nothing(store: dict[str, Any]) -> None:
    result = run("gc", "--dry-run", "--older-than", "0s", storage=store["storage"])
    assert result.exit_code == 0, result.output
    assert "would delete good" in result.output and "would delete bad" in result.output
    assert "busy" not in result.output
    assert run("status", "good", storage=store["storage"]).output.strip() == "SUCCESSFUL"


def test_plugins_json_lists_the_builtins() -> None:
    found = json.loads(run("plugins", "--json").output)
    names = {plugin["name"]: plugin for plugin in found}
    assert names["durably.storage._plugin"]["provides"]["storage"] == ["file", "memory"]


# -- plugins add commands ------------------------------------------------------------------------
class GreetingPlugin:
    """A plugin that adds a command, as a third-party package would."""

    @durably.hookimpl
    def durably_register_commands(self, cli: Any) -> None:
        import click

        @cli.command()
        @click.argument("name")
        def greet(name: str) -> None:
            """Say hello."""
            click.echo(f"hello {name}")


def test_a_registered_plugin_adds_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    reset_registry()
    try:
        register_plugin(GreetingPlugin(), name="greeting")
        assert main(["greet", "ops"]) == 0
    finally:
        cli.commands.pop("greet", None)
        reset_registry()
    assert capsys.readouterr().out == "hello ops\n"


PLUGIN_MODULE = '''
import click
from durably import hookimpl
from durably.cli import json_option, storage_option
from durably.inspect import Inspector


@hookimpl
def durably_register_commands(cli):
    @cli.command()
    @storage_option
    @json_option
    def failures(storage, as_json):
        """Count the FAILED workflows."""
        click.echo(len(Inspector(storage).list_workflows(status=["FAILED"]).items))
'''


def _install_entry_point_plugin(folder: Path) -> dict[str, str]:
    """A plugin distribution found through its `durably` entry point (a dist-info on the path)."""
    folder.mkdir()
    (folder / "durably_failures.py").write_text(PLUGIN_MODULE)
    info = folder / "durably_failures-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: durably-failures\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[durably]\nfailures = durably_failures\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def _durably(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a shell runs it."""
    script = Path(sys.executable).parent / "durably"
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.needs_persistent_storage
def test_an_installed_plugin_adds_a_command_to_the_console_script(
    store: dict[str, Any], tmp_path: Path
) -> None:
    env = _install_entry_point_plugin(tmp_path / "plugin")
    done = _durably("failures", "--storage", store["storage"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert "failures" in _durably("--help", env=env).stdout
    listed = _durably("plugins", env=env).stdout
    assert "failures  (durably-failures 1.0, durably_failures)\n    commands: failures" in listed


# -- the console script: exit codes and completion -----------------------------------------------
@pytest.mark.needs_persistent_storage
def test_console_script_exit_codes(store: dict[str, Any]) -> None:
    env = {**os.environ, "DURABLY_STORAGE": store["storage"]}
    assert _durably("status", "good", env=env).returncode == 0
    assert _durably("output", "bad", env=env).returncode == EXIT_FAILED
    assert _durably("list", "--limit", "0", env=env).returncode == EXIT_USAGE
    missing = _durably("show", "nosuch", env=env)
    assert missing.returncode == EXIT_NOT_FOUND
    assert "No such workflow_id 'nosuch'" in missing.stderr


@pytest.mark.needs_persistent_storage
def test_shell_completion_offers_workflow_ids(store: dict[str, Any]) -> None:
    env = {
        **os.environ,
        "DURABLY_STORAGE": store["storage"],
        "_DURABLY_COMPLETE": "bash_complete",
        "COMP_WORDS": "durably show go",
        "COMP_CWORD": "2",
    }
    done = _durably(env=env)
    assert "good" in done.stdout and "bad" not in done.stdout


def test_help_documents_the_exit_codes() -> None:
    assert "0 ok, 1 failed, 2 usage error, 3 not found" in run("--help").output


@pytest.mark.needs_persistent_storage
def test_list_works_where_ray_was_never_started(store: dict[str, Any]) -> None:
    script = textwrap.dedent(
        f"""
        import ray
        from durably.cli import main
        code = main(["list", "--storage", {store["storage"]!r}])
        print("ray started:", ray.is_initialized())
        raise SystemExit(code)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ray started: False" in done.stdout


@workflow.step(max_retries=0)
def slow_gate(folder: str) -> int:
    if not Path(folder, "open").exists():
        raise RuntimeError("the gate is closed")
    deadline = time.monotonic() + WAIT  # holds the resume while the test looks at its progress bar
    while not Path(folder, "seen").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return 2


@pytest.mark.needs_persistent_storage
def test_resume_draws_a_progress_bar_of_steps_finished_of_known(store: dict[str, Any]) -> None:
    folder = store["folder"]
    with pytest.raises(workflow.WorkflowExecutionError):
        add.step(add.step(0, 1), slow_gate.step(str(folder))).run(workflow_id="slow")
    (folder / "open").touch()
    env = {**os.environ, "DURABLY_STORAGE": store["storage"], "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    script = Path(sys.executable).parent / "durably"
    resuming = subprocess.Popen(
        [str(script), "resume", "slow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + WAIT
    while workflow.get_status("slow") != workflow.WorkflowStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # not a threshold: lets the bar draw at least once while slow_gate waits
    (folder / "seen").touch()
    out, err = resuming.communicate(timeout=WAIT)
    assert resuming.returncode == 0, err
    assert out.strip() == "3"
    assert "resuming slow" in err
    assert "1/3" in err  # the inner add finished in the first run; three steps are known
