"""How durably's errors become HTTP answers (shared by the JSON API and the pages)."""

from __future__ import annotations

from durably.workflow import ActorNotFoundError, WorkflowError, WorkflowNotFoundError


class OutputsHiddenError(Exception):
    """The dashboard was not allowed to unpickle outputs (unsigned store, no --show-outputs)."""

    def __init__(self) -> None:
        super().__init__(
            "outputs are not shown: previewing one unpickles data that anyone with write access to the "
            "storage could have crafted; sign the store (DURABLY_SIGNING_KEY) or start the dashboard with "
            "--show-outputs to allow it"
        )


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status for an error a request can cause, or None for a bug (answered with 500)."""
    if isinstance(exc, (WorkflowNotFoundError, ActorNotFoundError)):
        return 404
    if isinstance(exc, OutputsHiddenError):
        return 403
    if isinstance(exc, WorkflowError):
        return 409  # the workflow's state does not allow it (running, finished, cancelled)
    if isinstance(exc, (ValueError, TypeError)):
        return 400
    return None


def message_of(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])  # KeyError's str() adds quotes
    return str(exc) or type(exc).__name__
