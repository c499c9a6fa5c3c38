"""Every hook a durably plugin can implement; docs/plugins.md documents each one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from durably.codecs import Codec
    from durably.events import EventListener
    from durably.executors import Executor
    from durably.storage import Storage

hookspec = pluggy.HookspecMarker("durably")
#: Decorates a plugin's hook implementations (also importable as ``durably.hookimpl``).
hookimpl = pluggy.HookimplMarker("durably")


@hookspec
def durably_storage_backends() -> Mapping[str, Callable[[str], Storage]]:
    """Return URL schemes this plugin serves, each mapped to a factory that builds a Storage from a URL."""


@hookspec
def durably_executors() -> Mapping[str, Callable[[], Executor]]:
    """Return executor names this plugin provides, each mapped to a factory of an Executor."""


@hookspec
def durably_event_listeners() -> Mapping[str, type[EventListener]]:
    """Return event listener classes by the name that ``wait_for_event(name, ...)`` accepts."""


@hookspec
def durably_codecs() -> Mapping[str, Callable[[], Codec]]:
    """Return codec names this plugin provides, each mapped to a factory that builds the Codec.

    A factory reads its keys from the environment (or a key file) of the process it runs in.
    """


@hookspec
def durably_workflow_started(
    workflow_id: str, metadata: Mapping[str, Any], context: Mapping[str, str]
) -> None:
    """Called in the driving process when a workflow starts or resumes running.

    ``context`` is what ``durably_propagation_context`` returned where the run was asked for
    (``run``, ``run_async``, ``resume``), which may be another process than the driving one.
    """


@hookspec
def durably_workflow_finished(workflow_id: str, status: str, error: BaseException | None) -> None:
    """Called in the driving process when a workflow ends: SUCCESSFUL, FAILED or CANCELED."""


@hookspec
def durably_propagation_context(workflow_id: str | None) -> Mapping[str, str] | None:
    """Called where work is handed to another process; returns entries (trace context) to carry with it."""


@hookspec
def durably_step_started(
    workflow_id: str, step_id: str, name: str, attempt: int, context: Mapping[str, str]
) -> None:
    """Called in the worker just before a step's function runs (attempt counts from 1)."""


@hookspec
def durably_step_finished(
    workflow_id: str, step_id: str, name: str, duration: float, context: Mapping[str, str]
) -> None:
    """Called in the worker after a step's result was checkpointed; duration in seconds."""


@hookspec
def durably_step_continued(
    workflow_id: str, step_id: str, name: str, duration: float, context: Mapping[str, str]
) -> None:
    """Called in the worker when a step returned a sub-workflow, which now computes its result."""


@hookspec
def durably_step_failed(
    workflow_id: str, step_id: str, name: str, error: BaseException, context: Mapping[str, str]
) -> None:
    """Called in the worker when a step failed for good (no retries left, or not retryable)."""


@hookspec
def durably_step_retried(
    workflow_id: str,
    step_id: str,
    name: str,
    attempt: int,
    error: BaseException,
    delay: float,
    context: Mapping[str, str],
) -> None:
    """Called in the worker when a failed attempt will be retried after ``delay`` seconds."""


@hookspec
def durably_actor_call_started(
    actor_id: str, method: str, readonly: bool, context: Mapping[str, str]
) -> None:
    """Called in the process applying a virtual-actor call, before the method runs."""


@hookspec
def durably_actor_call_finished(
    actor_id: str,
    method: str,
    readonly: bool,
    duration: float,
    error: BaseException | None,
    context: Mapping[str, str],
) -> None:
    """Called in the process applying a virtual-actor call when it ends (committed, or failed)."""


@hookspec
def durably_register_commands(cli: click.Group) -> None:
    """Add commands to the ``durably`` command line: decorate functions with ``@cli.command()``."""
