"""``workflow.wait_for_event`` and ``workflow.sleep``: step futures that wait without holding a worker."""

from __future__ import annotations

import math
import re
import threading
from typing import Any

from durably._options import StepOptions
from durably._plugins import get_registry
from durably._step import StepFunction, Workflow
from durably.events import EventListener
from durably.events._timer import SleepDeadline, TimerListener

# Event steps are not retried by durably: a listener's error (a timeout, a refused login) is the
# step's failure. A crashed event loop is retried by the executor, which polls again.
_EVENT_STEP_OPTIONS = StepOptions(max_retries=0)


class EventStepFunction(StepFunction[Any]):
    """A listener class used as a step: the engine hands its steps to the executor's event path."""

    is_event_step = True

    def __init__(self, listener: type[EventListener], name: str) -> None:
        super().__init__(listener, _EVENT_STEP_OPTIONS)
        self._name = name

    @property
    def default_name(self) -> str:
        return self._name


_functions: dict[tuple[type[EventListener], str], EventStepFunction] = {}
_functions_lock = threading.Lock()


def _event_step_function(listener: type[EventListener], name: str) -> EventStepFunction:
    """One step function per listener class, so the class is pickled and stored once."""
    with _functions_lock:
        function = _functions.get((listener, name))
        if function is None:
            function = _functions[(listener, name)] = EventStepFunction(listener, name)
        return function


def _listener_class(listener: Any) -> type[EventListener]:
    if isinstance(listener, str):
        registered = get_registry().event_listeners()
        if listener not in registered:
            known = ", ".join(sorted(registered)) or "none"
            raise ValueError(
                f"no event listener is registered as {listener!r} (registered: {known}); install the "
                "plugin that provides it, or pass an EventListener subclass"
            )
        return registered[listener]
    if isinstance(listener, type) and issubclass(listener, EventListener):
        return listener
    if isinstance(listener, EventListener):
        raise TypeError(
            f"wait_for_event takes an EventListener subclass, got an instance of {type(listener).__name__}; "
            "pass the class itself (durably creates a listener with no arguments)"
        )
    shown = listener.__name__ if isinstance(listener, type) else type(listener).__name__
    raise TypeError(
        f"wait_for_event takes an EventListener subclass or the name of a registered listener, got {shown}"
    )


def wait_for_event(listener: type[EventListener] | str, *args: Any, **kwargs: Any) -> Workflow[Any]:
    """A step future whose value is the next event the listener delivers.

    ``listener`` is an :class:`EventListener` subclass, or the name a plugin registered it under
    (``"kafka"``, ``"external"``, ``"timer"``). When the workflow reaches this step, durably creates
    the listener with no arguments and awaits ``poll_for_event(*args, **kwargs)`` (arguments may be
    other step futures); the event is stored before ``event_checkpointed`` is called, so it is
    delivered into the workflow exactly once. The wait holds no worker and no CPU.
    """
    listener_class = _listener_class(listener)
    _refuse_secret_arguments(listener_class, kwargs)
    return _event_step_function(listener_class, "wait_for_event").step(*args, **kwargs)


#: Words in an argument name that mark it as a secret (arguments are stored with the workflow).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential")


def looks_secret(name: str) -> bool:
    """Whether an argument named ``name`` probably holds a secret.

    ``sasl*`` settings and names ending in a ``key`` segment after another (``api_key``,
    ``ssl.key``) count; a bare ``key`` (a message key, say) does not.
    """
    lowered = name.lower()
    segments = [segment for segment in re.split(r"[._\-]", lowered) if segment]
    return (
        any(word in lowered for word in _SECRET_WORDS)
        or lowered.startswith("sasl")
        or (len(segments) > 1 and segments[-1] == "key")
    )


def _refuse_secret_arguments(listener: type[EventListener], kwargs: dict[str, Any]) -> None:
    secret = sorted(name for name in kwargs if looks_secret(name) and name not in listener.public_arguments)
    if secret:
        raise ValueError(
            f"wait_for_event({listener.__name__}, ...) got {', '.join(map(repr, secret))}, which look like "
            "secrets; arguments are stored with the workflow, so secrets must not be arguments: "
            f"{listener.secret_hint}"
        )


def sleep(seconds: float) -> Workflow[None]:
    """A step future that finishes ``seconds`` after the workflow reaches it (its value is None).

    The deadline is recorded in storage when the sleep starts; after a crash and resume the
    workflow waits only for what is left of it, and not at all when it has passed.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"sleep takes a number of seconds, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"sleep takes a finite number of seconds >= 0, got {seconds!r}")
    deadline = _event_step_function(SleepDeadline, "sleep.deadline").step(float(seconds))
    return _event_step_function(TimerListener, "sleep").step(deadline)
