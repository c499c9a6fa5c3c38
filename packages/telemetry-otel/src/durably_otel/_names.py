"""The names durably-otel reports under: instrumentation scope, span names, attributes and metrics."""

from __future__ import annotations

#: The instrumentation scope of every span and metric.
SCOPE = "durably_otel"

# Span names (low cardinality: the step's, event's or method's name, never an id).
WORKFLOW_SPAN = "durably.workflow"
STEP_SPAN_PREFIX = "durably.step "
EVENT_SPAN_PREFIX = "durably.event "
ACTOR_CALL_SPAN_PREFIX = "durably.actor_call "

# Span and metric attributes.
WORKFLOW_ID = "durably.workflow.id"
WORKFLOW_STATUS = "durably.workflow.status"
STEP_ID = "durably.step.id"
STEP_NAME = "durably.step.name"
STEP_ATTEMPT = "durably.step.attempt"
STEP_OUTCOME = "durably.step.outcome"
RETRY_DELAY = "durably.retry.delay"
ACTOR_ID = "durably.actor.id"
ACTOR_METHOD = "durably.actor.method"
ACTOR_READONLY = "durably.actor.readonly"

#: Values of ``durably.step.outcome``: how an attempt ended.
OUTCOME_FINISHED = "finished"
OUTCOME_CONTINUED = "continued"
OUTCOME_RETRIED = "retried"
OUTCOME_FAILED = "failed"

# Metrics.
STEP_DURATION = "durably.step.duration"
STEPS_FINISHED = "durably.steps.finished"
STEPS_FAILED = "durably.steps.failed"
STEPS_RETRIED = "durably.steps.retried"
WORKFLOWS_FINISHED = "durably.workflows.finished"
EVENT_WAIT_TIME = "durably.event.wait_time"

#: The step names of event waits (``workflow.wait_for_event``, ``workflow.sleep``); their spans are
#: named ``durably.event ...`` and their durations also go to ``durably.event.wait_time``.
EVENT_WAIT_STEPS = frozenset({"wait_for_event", "sleep"})
