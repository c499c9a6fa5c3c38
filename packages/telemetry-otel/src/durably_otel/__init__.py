"""durably-otel: OpenTelemetry spans and metrics for durably workflows, steps, actor calls and event waits.

Installed, it is a durably plugin (entry point ``otel``): nothing to import or call. It reports to
the application's global TracerProvider and MeterProvider, or, in a process that has none (a Ray
worker, durably's engine actor), to providers built from the SDK's ``OTEL_*`` variables.
"""

from durably_otel._names import (
    ACTOR_CALL_SPAN_PREFIX,
    ACTOR_ID,
    ACTOR_METHOD,
    ACTOR_READONLY,
    EVENT_SPAN_PREFIX,
    EVENT_WAIT_STEPS,
    EVENT_WAIT_TIME,
    OUTCOME_CONTINUED,
    OUTCOME_FAILED,
    OUTCOME_FINISHED,
    OUTCOME_RETRIED,
    RETRY_DELAY,
    SCOPE,
    STEP_ATTEMPT,
    STEP_DURATION,
    STEP_ID,
    STEP_NAME,
    STEP_OUTCOME,
    STEP_SPAN_PREFIX,
    STEPS_FAILED,
    STEPS_FINISHED,
    STEPS_RETRIED,
    WORKFLOW_ID,
    WORKFLOW_SPAN,
    WORKFLOW_STATUS,
    WORKFLOWS_FINISHED,
)

__all__ = [
    "ACTOR_CALL_SPAN_PREFIX",
    "ACTOR_ID",
    "ACTOR_METHOD",
    "ACTOR_READONLY",
    "EVENT_SPAN_PREFIX",
    "EVENT_WAIT_STEPS",
    "EVENT_WAIT_TIME",
    "OUTCOME_CONTINUED",
    "OUTCOME_FAILED",
    "OUTCOME_FINISHED",
    "OUTCOME_RETRIED",
    "RETRY_DELAY",
    "SCOPE",
    "STEPS_FAILED",
    "STEPS_FINISHED",
    "STEPS_RETRIED",
    "STEP_ATTEMPT",
    "STEP_DURATION",
    "STEP_ID",
    "STEP_NAME",
    "STEP_OUTCOME",
    "STEP_SPAN_PREFIX",
    "WORKFLOWS_FINISHED",
    "WORKFLOW_ID",
    "WORKFLOW_SPAN",
    "WORKFLOW_STATUS",
]
