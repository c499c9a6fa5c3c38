"""Spans and metrics from durably's lifecycle hooks: one Telemetry per process, created when first needed.

A step's hooks may run on different threads (an event step's end runs on a storage thread), so
open spans are kept by ``(workflow_id, step_id)``, not on the thread. The step span is made the
current span of the thread that started it, so spans the step's own code creates are its
children; it is detached only on that thread. Actor-call hooks run on one thread, nested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Span, Status, StatusCode

from durably_otel import _names as names
from durably_otel import _providers

#: The version reported with the instrumentation scope (durably loads plugins only from distributions).
_VERSION = version("durably-otel")


@dataclass
class _OpenStep:
    span: Span
    token: object
    thread: int
    first_started: float  # time.monotonic() at the first attempt's start


@dataclass
class _OpenCall:
    span: Span
    token: object


class Telemetry:
    """The tracer, the instruments, and the spans that are open in this process."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer(names.SCOPE, _VERSION)
        meter = metrics.get_meter(names.SCOPE, _VERSION)
        self.step_duration = meter.create_histogram(
            names.STEP_DURATION, unit="s", description="Seconds from a step's first attempt to its end."
        )
        self.steps_finished = meter.create_counter(
            names.STEPS_FINISHED, unit="{step}", description="Steps whose result was checkpointed."
        )
        self.steps_failed = meter.create_counter(
            names.STEPS_FAILED, unit="{step}", description="Steps that failed for good."
        )
        self.steps_retried = meter.create_counter(
            names.STEPS_RETRIED, unit="{attempt}", description="Failed step attempts that were retried."
        )
        self.workflows_finished = meter.create_counter(
            names.WORKFLOWS_FINISHED,
            unit="{workflow}",
            description="Workflow runs that ended, by final status.",
        )
        self.event_wait_time = meter.create_histogram(
            names.EVENT_WAIT_TIME, unit="s", description="Seconds an event step waited for its event."
        )
        self._lock = threading.Lock()
        self._workflows: dict[str, Span] = {}
        self._steps: dict[tuple[str, str], _OpenStep] = {}
        self._calls = threading.local()

    # -- workflows (in the driving process) -------------------------------------------------------
    def workflow_started(self, workflow_id: str, context: Mapping[str, str]) -> None:
        """``context``: the trace context carried from where the run was asked for (with Ray, the
        application's process; the engine actor drives the run), so the span is its caller's child."""
        span = self.tracer.start_span(
            names.WORKFLOW_SPAN, context=_parent(context), attributes={names.WORKFLOW_ID: workflow_id}
        )
        with self._lock:
            previous = self._workflows.pop(workflow_id, None)
            self._workflows[workflow_id] = span
        if previous is not None:  # a run that lost its lease never finished here
            previous.end()

    def workflow_finished(self, workflow_id: str, status: str, error: BaseException | None) -> None:
        self.workflows_finished.add(1, {names.WORKFLOW_STATUS: status})
        with self._lock:
            span = self._workflows.pop(workflow_id, None)
        if span is None:
            return
        span.set_attribute(names.WORKFLOW_STATUS, status)
        if status == "FAILED" and error is not None:
            _record_error(span, error)
        span.end()

    def propagation_context(self, workflow_id: str | None) -> dict[str, str] | None:
        """The trace context to carry: the workflow's span for its steps, else the current one."""
        parent = None
        if workflow_id is not None:
            with self._lock:
                span = self._workflows.get(workflow_id)
            if span is not None:
                parent = trace.set_span_in_context(span)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=parent)
        return carrier or None

    # -- steps (in the worker) ------------------------------------------------------------------------
    def step_started(
        self, workflow_id: str, step_id: str, name: str, attempt: int, context: Mapping[str, str]
    ) -> None:
        event = name in names.EVENT_WAIT_STEPS
        prefix = names.EVENT_SPAN_PREFIX if event else names.STEP_SPAN_PREFIX
        span = self.tracer.start_span(
            prefix + name,
            context=_parent(context),
            attributes={
                names.WORKFLOW_ID: workflow_id,
                names.STEP_ID: step_id,
                names.STEP_NAME: name,
                names.STEP_ATTEMPT: attempt,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        key = (workflow_id, step_id)
        with self._lock:
            previous = self._steps.get(key)
            first_started = previous.first_started if previous is not None else time.monotonic()
            self._steps[key] = _OpenStep(span, token, threading.get_ident(), first_started)

    def step_retried(
        self, workflow_id: str, step_id: str, name: str, error: BaseException, delay: float
    ) -> None:
        self.steps_retried.add(1, {names.STEP_NAME: name})
        with self._lock:
            open_step = self._steps.get((workflow_id, step_id))
        if open_step is not None:
            open_step.span.set_attribute(names.RETRY_DELAY, delay)
            _record_error(open_step.span, error)
            self._end_attempt(open_step, names.OUTCOME_RETRIED)

    def step_ended(
        self, workflow_id: str, step_id: str, name: str, outcome: str, error: BaseException | None = None
    ) -> None:
        """The step's last attempt ended: finished, continued (returned a sub-workflow) or failed."""
        with self._lock:
            open_step = self._steps.pop((workflow_id, step_id), None)
        if open_step is None:
            return
        duration = time.monotonic() - open_step.first_started
        attributes = {names.STEP_NAME: name, names.STEP_OUTCOME: outcome}
        self.step_duration.record(duration, attributes)
        if outcome == names.OUTCOME_FINISHED:
            self.steps_finished.add(1, {names.STEP_NAME: name})
            if name in names.EVENT_WAIT_STEPS:
                self.event_wait_time.record(duration, {names.STEP_NAME: name})
        elif outcome == names.OUTCOME_FAILED:
            self.steps_failed.add(1, {names.STEP_NAME: name})
        if error is not None:
            _record_error(open_step.span, error)
        self._end_attempt(open_step, outcome)

    @staticmethod
    def _end_attempt(open_step: _OpenStep, outcome: str) -> None:
        open_step.span.set_attribute(names.STEP_OUTCOME, outcome)
        open_step.span.end()
        # A context attached on another thread cannot be detached here (an event step's end runs
        # on a storage thread); that thread's context then dies with its asyncio task.
        if open_step.thread == threading.get_ident():
            otel_context.detach(open_step.token)  # type: ignore[arg-type]

    # -- virtual-actor calls (where they are applied) -----------------------------------------------
    def actor_call_started(
        self, actor_id: str, method: str, readonly: bool, context: Mapping[str, str]
    ) -> None:
        span = self.tracer.start_span(
            names.ACTOR_CALL_SPAN_PREFIX + method,
            context=_parent(context),
            attributes={names.ACTOR_ID: actor_id, names.ACTOR_METHOD: method, names.ACTOR_READONLY: readonly},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._call_stack().append(_OpenCall(span, token))

    def actor_call_finished(self, error: BaseException | None) -> None:
        stack = self._call_stack()
        if not stack:
            return
        call = stack.pop()
        if error is not None:
            _record_error(call.span, error.__cause__ or error)
        call.span.end()
        otel_context.detach(call.token)  # type: ignore[arg-type]

    def _call_stack(self) -> list[_OpenCall]:
        stack: list[_OpenCall] | None = getattr(self._calls, "stack", None)
        if stack is None:
            stack = self._calls.stack = []
        return stack


def _parent(context: Mapping[str, str]) -> Any:
    """The context a carried carrier names, or (with none carried) this thread's current one."""
    return propagate.extract(context) if context else None


def _record_error(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


_telemetry: Telemetry | None = None
_telemetry_lock = threading.Lock()


def current() -> Telemetry | None:
    """This process's Telemetry, or None while no provider is set and the environment asks for none.

    Checked on every hook, so that a provider the application sets after durably loaded its
    plugins is still used; while telemetry is off this is the whole cost of the plugin.
    """
    telemetry = _telemetry
    if telemetry is not None:
        return telemetry
    if not _providers.application_has_providers():
        if not _providers.environment_asks_for_telemetry():
            return None
        _providers.configure_from_environment()
    return _create()


def _create() -> Telemetry:
    global _telemetry
    with _telemetry_lock:
        if _telemetry is None:
            _telemetry = Telemetry()
        return _telemetry
