"""The pluggy entry point: durably's lifecycle hooks, turned into spans and metrics by ``_telemetry``.

Each hook returns at once while telemetry is off (see ``_providers``). A failure inside a hook is
logged, never raised: observability must not fail a step or a workflow.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from durably import hookimpl
from durably_otel import _names as names
from durably_otel._telemetry import current

log = logging.getLogger("durably_otel")
F = TypeVar("F", bound=Callable[..., Any])


def _never_raises(hook: F) -> F:
    @functools.wraps(hook)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        except Exception:
            log.exception("durably-otel: %s failed; telemetry of this event is lost", hook.__name__)
            return None

    return guarded  # type: ignore[return-value]


@hookimpl
@_never_raises
def durably_workflow_started(workflow_id: str, context: Mapping[str, str]) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.workflow_started(workflow_id, context)


@hookimpl
@_never_raises
def durably_workflow_finished(workflow_id: str, status: str, error: BaseException | None) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.workflow_finished(workflow_id, status, error)


@hookimpl
@_never_raises
def durably_propagation_context(workflow_id: str | None) -> Mapping[str, str] | None:
    telemetry = current()
    return None if telemetry is None else telemetry.propagation_context(workflow_id)


@hookimpl
@_never_raises
def durably_step_started(
    workflow_id: str, step_id: str, name: str, attempt: int, context: Mapping[str, str]
) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.step_started(workflow_id, step_id, name, attempt, context)


@hookimpl
@_never_raises
def durably_step_retried(
    workflow_id: str, step_id: str, name: str, error: BaseException, delay: float
) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.step_retried(workflow_id, step_id, name, error, delay)


@hookimpl
@_never_raises
def durably_step_finished(workflow_id: str, step_id: str, name: str) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.step_ended(workflow_id, step_id, name, names.OUTCOME_FINISHED)


@hookimpl
@_never_raises
def durably_step_continued(workflow_id: str, step_id: str, name: str) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.step_ended(workflow_id, step_id, name, names.OUTCOME_CONTINUED)


@hookimpl
@_never_raises
def durably_step_failed(workflow_id: str, step_id: str, name: str, error: BaseException) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.step_ended(workflow_id, step_id, name, names.OUTCOME_FAILED, error)


@hookimpl
@_never_raises
def durably_actor_call_started(
    actor_id: str, method: str, readonly: bool, context: Mapping[str, str]
) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.actor_call_started(actor_id, method, readonly, context)


@hookimpl
@_never_raises
def durably_actor_call_finished(error: BaseException | None) -> None:
    telemetry = current()
    if telemetry is not None:
        telemetry.actor_call_finished(error)
