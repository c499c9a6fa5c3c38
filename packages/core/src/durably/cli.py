"""The ``durably`` command: inspect and manage the workflows and actors of a storage (click + rich).

Exit codes scripts can rely on: 0 ok, 1 failed (the operation, or the workflow it ran), 2 usage
error, 3 not found (no such workflow, step or actor). Plugins add commands through the
``durably_register_commands`` hook.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import click
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from durably._api import DEFAULT_STORAGE
from durably._api import DEFAULT_STORAGE_ENV as STORAGE_ENV
from durably._durations import parse_duration
from durably._errors import WorkflowError, WorkflowExecutionError, WorkflowNotFoundError
from durably._plugins import get_registry, hook
from durably._resolve import open_storage
from durably._retention import collect_garbage
from durably._status import WorkflowStatus
from durably.inspect import Inspector, StepView, WorkflowDetail, WorkflowSummary
from durably.storage import StorageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

STATUS_NAMES = [status.value for status in WorkflowStatus]
FINAL_STATUS_NAMES = ["SUCCESSFUL", "FAILED", "CANCELED"]
STATUS_STYLES = {
    "SUCCESSFUL": "green",
    "FAILED": "red",
    "RUNNING": "cyan",
    "RESUMABLE": "yellow",
    "CANCELED": "magenta",
    "PENDING": "blue",
}

F = TypeVar("F", bound=Callable[..., Any])


class NotFound(click.ClickException):
    """No workflow, step or actor with that id: exit code 3."""

    exit_code = EXIT_NOT_FOUND


class Failed(click.ClickException):
    """The operation or the workflow failed: exit code 1."""

    exit_code = EXIT_FAILED


class DurablyGroup(click.Group):
    """Turns durably's errors into click errors with the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WorkflowNotFoundError as error:
            raise NotFound(str(error)) from error
        except (WorkflowError, StorageError) as error:
            raise Failed(str(error)) from error


# -- shared options and printing ------------------------------------------------------------------
def storage_option(command: F) -> F:
    """``--storage``, defaulting to $DURABLY_STORAGE, else ~/.durably/storage."""
    return click.option(
        "--storage",
        envvar=STORAGE_ENV,
        default=DEFAULT_STORAGE,
        show_default=True,
        help=f"Storage path or URL (file://, memory://, s3://, gs://, ...); env: {STORAGE_ENV}.",
    )(command)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(command)


def _inspector(storage: str) -> Inspector:
    return Inspector(storage)


def _console(width: int | None = None) -> Console:
    return Console(highlight=False, soft_wrap=False, width=width)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _plain(value: Any) -> Any:
    """Dataclasses (and the tuples and mappings in them) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _status_text(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


def _steps_text(summary: WorkflowSummary) -> str:
    total = "?" if summary.steps_total is None else str(summary.steps_total)
    return f"{summary.steps_finished}/{total}"


def _parse_time(value: str | None, option: str) -> float | None:
    """A point in time: ISO date/time (local time unless it says otherwise) or a duration ago ("2h")."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value, option)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO date/time (2026-11-27, 2026-11-27T14:30) nor a duration ago "
            "(30m, 2h, 7d)",
            param_hint=option,
        ) from None
    return moment.timestamp()


def _complete_workflow_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of workflow ids from the storage the command line (or environment) names."""
    storage = ctx.params.get("storage") or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    try:
        page = _inspector(storage).list_workflows(prefix=incomplete or None, limit=50)
    except Exception:  # completion must never print an error into the user's shell
        return []
    return [item.workflow_id for item in page.items]


workflow_id_argument = click.argument("workflow_id", shell_complete=_complete_workflow_ids)


def _init_workflows(storage: str, executor: str = "local") -> Any:
    """``durably.workflow`` initialised on the storage (the local executor starts no Ray)."""
    from durably import workflow

    workflow.init(storage=storage, executor=executor)
    return workflow


# -- the group ------------------------------------------------------------------------------------
@click.group(cls=DurablyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durably", prog_name="durably")
def cli() -> None:
    """Inspect and manage durably workflows and virtual actors.

    Exit codes: 0 ok, 1 failed, 2 usage error, 3 not found.
    """


@cli.command("list")
@storage_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_NAMES, case_sensitive=False),
    help="Only workflows with this status (repeat for several).",
)
@click.option("--since", help="Created at or after: ISO date/time, or a duration ago (2h, 7d).")
@click.option("--until", help="Created at or before: ISO date/time, or a duration ago.")
@click.option("--prefix", help="Only ids that start with this.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Workflows per page."
)
@click.option("--after", help="Continue after this cursor (printed under a full page).")
@click.option("--counts", is_flag=True, help="Also print how many workflows have each status.")
@json_option
def list_command(
    storage: str,
    statuses: tuple[str, ...],
    since: str | None,
    until: str | None,
    prefix: str | None,
    limit: int,
    after: str | None,
    counts: bool,
    as_json: bool,
) -> None:
    """List workflows, newest id first, one page at a time."""
    inspector = _inspector(storage)
    if (statuses or counts) and not inspector.status_index_built():
        click.echo(
            "note: this storage's status index is not built, so every workflow's status is read; "
            "run `durably index rebuild` once to make status filters and counts fast",
            err=True,
        )
    by_status = dict(inspector.count_by_status()) if counts else None
    page = inspector.list_workflows(
        status=[status.upper() for status in statuses] or None,
        prefix=prefix,
        since=_parse_time(since, "--since"),
        until=_parse_time(until, "--until"),
        limit=limit,
        after=after,
    )
    if as_json:
        found: dict[str, Any] = {"workflows": _plain(page.items), "next_cursor": page.next_cursor}
        if by_status is not None:
            found["counts"] = by_status
        _print_json(found)
        return
    console = _console()
    if by_status is not None:
        console.print("  ".join(f"{_status_text(name)} {number}" for name, number in by_status.items()))
    if page.items:
        table, needed = _workflow_table(page.items, console.width)
        # Wider than the terminal only when the ids alone are: the terminal wraps the line, no
        # id is cut (the console would crop it).
        (console if needed <= console.width else _console(width=needed)).print(table)
    else:
        console.print("no workflows")
    if page.next_cursor is not None:
        console.print(f"more: durably list --after {escape(page.next_cursor)} (same filters)", style="dim")


#: The columns of ``durably list`` besides ID and STATUS, least important first: the first ones are
#: dropped when the terminal is too narrow for them (an id is never cut: it is copied into commands).
_OPTIONAL_COLUMNS: tuple[tuple[str, Callable[[WorkflowSummary], str]], ...] = (
    ("UPDATED", lambda item: _when(item.updated)),
    ("CREATED", lambda item: _when(item.created)),
    ("DURATION", lambda item: _duration(item.duration)),
    ("STEPS", _steps_text),
)
_COLUMN_ORDER = ("ID", "STATUS", "CREATED", "UPDATED", "STEPS", "DURATION")
_COLUMN_GAP = 2  # the padding rich puts between two columns of a box-less table


def _workflow_table(items: Sequence[WorkflowSummary], width: int) -> tuple[Table, int]:
    """The ``list`` table with the columns that fit in ``width``, and the width it needs.

    Ids are never cut or wrapped (an id is copied into other commands): when the ids and statuses
    alone are wider than ``width``, the width returned is theirs.
    """
    cells: dict[str, list[str]] = {
        "ID": [item.workflow_id for item in items],
        "STATUS": [item.status for item in items],
    }
    for name, value in _OPTIONAL_COLUMNS:
        cells[name] = [value(item) for item in items]
    widths = {
        name: max(cell_len(name), *(cell_len(text) for text in column)) for name, column in cells.items()
    }
    shown = list(_COLUMN_ORDER)

    def needed() -> int:
        return sum(widths[column] for column in shown) + _COLUMN_GAP * (len(shown) - 1)

    for name, _ in _OPTIONAL_COLUMNS:
        if needed() <= width:
            break
        shown.remove(name)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in shown:
        justify: Literal["left", "right"] = "right" if name == "STEPS" else "left"
        table.add_column(name, no_wrap=True, overflow="fold", min_width=widths[name], justify=justify)
    for row in range(len(items)):
        table.add_row(
            *(
                _status_text(cells[name][row]) if name == "STATUS" else escape(cells[name][row])
                for name in shown
            )
        )
    return table, needed()


@cli.command()
@storage_option
@workflow_id_argument
@json_option
def status(storage: str, workflow_id: str, as_json: bool) -> None:
    """Print a workflow's status."""
    summary = _inspector(storage).get_summary(workflow_id)
    if as_json:
        _print_json(_plain(summary))
    else:
        click.echo(summary.status)


def _step_label(step: StepView) -> str:
    parts = [
        f"[bold]{escape(step.name)}[/bold]",
        f"[dim]({escape(step.step_id)})[/dim]" if step.step_id != step.name else "",
        _status_text(step.status),
        f"attempts {step.attempts}" if step.attempts else "",
        f"started {_when(step.start)}" if step.start is not None else "",
        _duration(step.duration) if step.duration is not None else "",
    ]
    return "  ".join(part for part in parts if part)


#: The most steps ``durably show`` draws (the read model's default).
_SHOWN_STEPS = 5000


def _add_error(node: Tree, step: StepView) -> None:
    if step.error is not None:
        node.add(f"[red]{escape(step.error.type)}: {escape(step.error.message)}[/red]")


def _step_tree(detail: WorkflowDetail) -> Tree:
    """The steps as a tree; a continuation chain is drawn flat.

    A step that returned a sub-graph gets, one level below it, the sub-graph's other steps and
    then its output step marked "↪ continued as". When that output step returned a sub-graph
    too (a loop: a step returning ``step.step(n - 1)``), the next link goes at that same level,
    so a loop of 10,000 iterations is 10,000 lines, not 10,000 levels. Built with a stack, not
    recursion.
    """
    root = Tree(f"steps of [bold]{escape(detail.summary.workflow_id)}[/bold]")
    # (node, steps to add under it) or (node, links to append under it once its steps are in)
    stack: list[tuple[Tree, tuple[StepView, ...] | list[Tree]]] = [(root, detail.steps)]
    while stack:
        parent, pending = stack.pop()
        if isinstance(pending, list):
            parent.children.extend(pending)
            continue
        for step in pending:
            node = parent.add(_step_label(step))
            _add_error(node, step)
            links: list[Tree] = []
            below = len(stack)  # entries pushed from here on are popped before one put here
            holder, current = node, step
            while current.children:
                *inner, output = current.children
                if inner:
                    stack.append((holder, tuple(inner)))
                holder = Tree(f"[dim]↪ continued as[/dim] {_step_label(output)}")
                _add_error(holder, output)
                links.append(holder)
                current = output
            if links:  # under ``node`` after the other steps of its sub-graph, which go in first
                stack.insert(below, (node, links))
    return root


@cli.command()
@storage_option
@workflow_id_argument
@json_option
def show(storage: str, workflow_id: str, as_json: bool) -> None:
    """Show a workflow: status, metadata, error with its traceback, and its steps as a tree."""
    if as_json:  # nested as stored, so as deep as the default cut (64 levels)
        _print_json(_plain(_inspector(storage).get_workflow(workflow_id)))
        return
    # Drawn flat, a chain of continuations costs lines, not depth: only the step count cuts it.
    detail = _inspector(storage).get_workflow(workflow_id, max_depth=_SHOWN_STEPS, max_steps=_SHOWN_STEPS)
    summary = detail.summary
    console = _console()
    lines = [
        ("workflow", escape(summary.workflow_id)),
        ("status", _status_text(summary.status)),
        ("created", _when(summary.created)),
        ("updated", _when(summary.updated)),
        ("steps", _steps_text(summary)),
        ("duration", _duration(summary.duration)),
        ("expires", _when(detail.expires_at) if detail.expires_at is not None else "never"),
        ("metadata", escape(json.dumps(dict(detail.metadata))) if detail.metadata else "-"),
    ]
    for label, value in lines:
        console.print(f"[bold]{label:<9}[/bold] {value}")
    if detail.error is not None:
        error = f"{escape(detail.error.type)}: {escape(detail.error.message)}"
        console.print(f"[bold]{'error':<9}[/bold] [red]{error}[/red]", soft_wrap=True)
        console.print(escape(detail.error.traceback.rstrip()), style="dim", soft_wrap=True)
    console.print(_step_tree(detail))
    if detail.steps_truncated:
        console.print("(step tree cut: the workflow has more steps than shown)", style="dim")


@cli.command()
@storage_option
@workflow_id_argument
@click.option("--step", "step", help="A step's name or id instead of the workflow's output.")
@json_option
def output(storage: str, workflow_id: str, step: str | None, as_json: bool) -> None:
    """Print a workflow's output (or a step's). This unpickles it: use on storage you trust."""
    value = _inspector(storage).load_output(workflow_id, step)
    if not as_json:
        click.echo(repr(value))
        return
    try:
        click.echo(json.dumps(value, indent=2))
    except (TypeError, ValueError) as error:
        raise Failed(f"the output ({type(value).__name__}) is not JSON: {error}; leave out --json") from None


@cli.command("send-event")
@storage_option
@workflow_id_argument
@click.argument("key")
@click.argument("payload", metavar="JSON", default="null")
def send_event(storage: str, workflow_id: str, key: str, payload: str) -> None:
    """Send an external event (a JSON value) to a workflow's wait_for_event(ExternalEvent, KEY)."""
    try:
        value = json.loads(payload)
    except ValueError as error:
        raise click.BadParameter(f"{payload!r} is not JSON: {error}", param_hint="JSON") from None
    _init_workflows(storage).send_event(workflow_id, key, value)


def _progress_until_done(inspector: Inspector, workflow_id: str, handle: Any) -> None:
    """A progress bar of steps finished (of those known) on stderr, until ``handle`` is done."""
    done = getattr(handle, "done", None)
    if done is None:  # a ray.ObjectRef
        import ray

        def done() -> bool:
            ready, _ = ray.wait([handle], timeout=0)
            return bool(ready)

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"resuming {escape(workflow_id)}", total=None)
        while not done():
            summary = inspector.get_summary(workflow_id)
            progress.update(task, completed=summary.steps_finished, total=summary.steps_total)
            time.sleep(0.2)


@cli.command()
@storage_option
@workflow_id_argument
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="Where the steps run: local (threads of this process) or ray (joins or starts Ray).",
)
@click.option(
    "--upgrade-code",
    is_flag=True,
    help="Capture the workflow's code snapshot again from its folders as they are now (with --executor ray).",
)
@json_option
def resume(storage: str, workflow_id: str, executor: str, upgrade_code: bool, as_json: bool) -> None:
    """Resume a workflow, showing steps finished of known, and print its output."""
    workflow = _init_workflows(storage, executor)
    inspector = _inspector(storage)
    handle = workflow.resume_async(workflow_id, runtime_env="current" if upgrade_code else None)
    _progress_until_done(inspector, workflow_id, handle)
    try:
        value = handle.result() if hasattr(handle, "result") else _ray_get(handle)
    except WorkflowExecutionError as error:
        raise Failed(str(error)) from error
    click.echo(json.dumps(value, default=repr) if as_json else repr(value))


def _ray_get(handle: Any) -> Any:
    import ray

    try:
        return ray.get(handle)
    except ray.exceptions.RayTaskError as error:
        raise error.cause if isinstance(error.cause, Exception) else error from None


@cli.command()
@storage_option
@workflow_id_argument
def cancel(storage: str, workflow_id: str) -> None:
    """Cancel a workflow: its running steps are stopped, its status becomes CANCELED."""
    _init_workflows(storage).cancel(workflow_id)


@cli.command()
@storage_option
@workflow_id_argument
def delete(storage: str, workflow_id: str) -> None:
    """Delete a workflow that is not running (or a virtual actor), with all its records."""
    _init_workflows(storage).delete(workflow_id)


@cli.command()
@storage_option
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@click.option(
    "--older-than",
    help="Delete finished workflows that ended longer ago than this (30d, 12h), whatever their retention.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(FINAL_STATUS_NAMES, case_sensitive=False),
    help="Only workflows with this final status (repeat for several).",
)
@click.option("--actors-idle", help="Also delete virtual actors with no call for this long (90d).")
@json_option
def gc(
    storage: str,
    dry_run: bool,
    older_than: str | None,
    statuses: tuple[str, ...],
    actors_idle: str | None,
    as_json: bool,
) -> None:
    """Delete finished workflows whose retention has expired (never a running one)."""
    try:
        older = None if older_than is None else parse_duration(older_than, "--older-than")
        idle = None if actors_idle is None else parse_duration(actors_idle, "--actors-idle")
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    report = collect_garbage(
        open_storage(storage),
        older_than=older,
        statuses=[status.upper() for status in statuses] or None,
        actors_idle=idle,
        dry_run=dry_run,
    )
    if as_json:
        _print_json(_plain(report))
        return
    verb = "would delete" if dry_run else "deleted"
    for workflow_id in report.deleted:
        click.echo(f"{verb} {workflow_id}")
    for workflow_id in report.finished:
        click.echo(f"finished deleting {workflow_id}")
    for actor_id in report.actors:
        click.echo(f"{verb} actor {actor_id}")
    for workflow_id, why in report.skipped:
        click.echo(f"kept {workflow_id}: {why}")
    click.echo(f"{verb} {len(report.deleted) + len(report.finished)} workflows, {len(report.actors)} actors")


@cli.group()
def index() -> None:
    """The status index that makes `list --status` and status counts fast."""


@index.command("rebuild")
@storage_option
@json_option
def index_rebuild(storage: str, as_json: bool) -> None:
    """Make the status index true for every workflow (reads every status; safe while workflows run).

    Needed once on a storage written by a version before the index; gc also does it.
    """
    report = _inspector(storage).rebuild_status_index()
    if as_json:
        _print_json(_plain(report))
        return
    click.echo(
        f"status index rebuilt: {report.workflows} workflows read, "
        f"{report.added} hints added, {report.removed} stale hints removed"
    )


@cli.group()
def actors() -> None:
    """Virtual actors."""


@actors.command("list")
@storage_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--after", help="Continue after this actor id.")
@json_option
def actors_list(storage: str, limit: int, after: str | None, as_json: bool) -> None:
    """List virtual actors: id, class, calls, last call."""
    page = _inspector(storage).list_actors(limit=limit, after=after)
    if as_json:
        _print_json({"actors": _plain(page.items), "next_cursor": page.next_cursor})
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "CLASS", "CALLS", "LAST CALL"):
        table.add_column(column, justify="right" if column == "CALLS" else "left")
    for item in page.items:
        table.add_row(escape(item.actor_id), escape(item.class_name), str(item.calls), _when(item.updated))
    console = _console()
    console.print(table if page.items else "no actors")
    if page.next_cursor is not None:
        console.print(f"more: durably actors list --after {escape(page.next_cursor)}", style="dim")


@actors.command("show")
@storage_option
@click.argument("actor_id")
@click.option("--recent", type=click.IntRange(min=0), default=20, show_default=True, help="Calls to show.")
@click.option("--state", is_flag=True, help="Also show the state (unpickles it: storage you trust).")
@json_option
def actors_show(storage: str, actor_id: str, recent: int, state: bool, as_json: bool) -> None:
    """Show a virtual actor and its most recent calls."""
    detail = _inspector(storage).get_actor(actor_id, recent=recent, allow_unpickle=state)
    if as_json:
        _print_json(_plain(detail))
        return
    console = _console()
    summary = detail.summary
    console.print(f"[bold]actor[/bold]     {escape(summary.actor_id)}")
    console.print(f"[bold]class[/bold]     {escape(summary.class_name)}")
    console.print(f"[bold]calls[/bold]     {summary.calls}")
    console.print(f"[bold]last call[/bold] {_when(summary.updated)}")
    if detail.state_preview is not None:
        console.print(f"[bold]state[/bold]     {escape(detail.state_preview)}")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("SEQ", "METHOD", "STATUS"):
        table.add_column(column)
    for call in detail.recent_calls:
        table.add_row(str(call.seq), escape(call.method), _status_text(call.status))
    console.print(table)


def _commands_added_by(plugin: Any) -> list[str]:
    """The names of the commands a plugin adds (its hook run on a scratch group)."""
    add_commands = getattr(plugin, "durably_register_commands", None)
    if add_commands is None:
        return []
    scratch = click.Group()
    try:
        add_commands(cli=scratch)
    except Exception as error:  # shown, not fatal: the other plugins still get listed
        return [f"(failed: {type(error).__name__}: {error})"]
    return sorted(scratch.commands)


@cli.command()
@json_option
def plugins(as_json: bool) -> None:
    """List the plugins found, their distribution and what they provide."""
    registry = get_registry()
    found = []
    for info in registry.plugins:
        provides = {} if info.error else registry.provides(info)
        lifecycle = ("durably_workflow_", "durably_step_", "durably_actor_", "durably_propagation_")
        observed = [hook for hook in info.hooks if hook.startswith(lifecycle)]
        commands = _commands_added_by(registry.manager.get_plugin(info.name))
        if commands:
            provides["commands"] = commands
        found.append((info, provides, observed))
    if as_json:
        _print_json(
            [
                {
                    "name": info.name,
                    "module": info.module,
                    "distribution": info.distribution,
                    "version": info.version,
                    "builtin": info.builtin,
                    "error": info.error,
                    "provides": provides,
                    "lifecycle_hooks": observed,
                }
                for info, provides, observed in found
            ]
        )
        return
    for info, provides, observed in found:
        origin = "built-in" if info.builtin else f"{info.distribution or '?'} {info.version or '?'}"
        click.echo(f"{info.name}  ({origin}, {info.module})")
        if info.error:
            click.echo(f"    FAILED to load: {info.error}")
            continue
        for kind, names in provides.items():
            if names:
                click.echo(f"    {kind}: {', '.join(names)}")
        if observed:
            click.echo(f"    lifecycle hooks: {', '.join(observed)}")


# -- codecs ---------------------------------------------------------------------------------------
@cli.group()
def codecs() -> None:
    """Manage the codecs of stored records (docs/security.md)."""


@codecs.command()
@click.option("--storage", required=True, help="Storage path or URL whose records to re-encode.")
@click.option(
    "--allow-unsigned-legacy",
    is_flag=True,
    help="Also re-encode records written before codecs were configured.",
)
def rewrite(storage: str, allow_unsigned_legacy: bool) -> None:
    """Re-encode every record with the configured codecs and first keys, record by record.

    Crash-safe: a killed run is finished by running it again. Stop the workflows first.
    """
    from durably._resolve import build_codecs, configured_codec_names, open_raw_storage
    from durably.codecs import LEGACY_ENV, rewrite_store

    if allow_unsigned_legacy:
        os.environ[LEGACY_ENV] = "1"  # this one-shot process reads records written before codecs
    names = configured_codec_names()
    if not names:
        raise click.UsageError(
            "no codec is configured: set DURABLY_SIGNING_KEY and/or DURABLY_ENCRYPTION_KEY "
            "(or DURABLY_CODECS) to the keys the store should be written with"
        )
    count = rewrite_store(open_raw_storage(storage), build_codecs(names))
    click.echo(f"re-encoded {count} records with {', '.join(names)}")


# -- entry point ----------------------------------------------------------------------------------
def load_plugin_commands(group: click.Group = cli) -> None:
    """Let every plugin add its commands to ``group`` (``durably_register_commands``)."""
    hook().durably_register_commands(cli=group)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``durably`` console script; returns the exit code."""
    load_plugin_commands()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="durably")
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILED)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
