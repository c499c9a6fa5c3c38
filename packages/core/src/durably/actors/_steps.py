"""Actor methods as steps: ``handle.method.step(...)`` and ``self.method.step(...)`` inside a method."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from durably._options import build_options
from durably._step import StepFunction, Workflow
from durably.actors._dispatch import call
from durably.actors._target import Target, current_call


class MethodDescriptor:
    """Replaces each method on an actor class, so that ``self.other.step(...)`` works inside methods."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__durably_method__ = func  # how _class.actor_methods finds the function
        self.__doc__ = func.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.func
        return BoundMethod(instance, self.func)


class BoundMethod:
    """A method of the running actor's instance: call it directly, or ``.step()`` it as a tail call."""

    def __init__(self, instance: Any, func: Callable[..., Any]) -> None:
        self.instance = instance
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(self.instance, *args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Workflow[Any]:
        """A step future of this method on the running actor (its result becomes the call's result)."""
        running = current_call.get()
        if running is None or running.instance is not self.instance:
            raise RuntimeError(
                f"self.{self.func.__name__}.step() works only inside a running method of a virtual actor"
            )
        return method_step(running.target, self.func.__name__, None, {}, args, kwargs)


def _actor_method_step(
    target: Target, method: str, call_id: str, *args: Any, **kwargs: Any
) -> Any:  # pragma: no cover - runs inside steps
    return call(target, method, args, kwargs, call_id)


class ActorMethodStep(StepFunction[Any]):
    """The step function behind ``handle.method.step(...)``; its call id is fixed when the step is built."""

    def __init__(self, target: Target, method: str, options: Any) -> None:
        super().__init__(_actor_method_step, options)
        self.target = target
        self.method = method

    @property
    def default_name(self) -> str:
        return self.step_options.name or f"{self.target.actor_id}.{self.method}".replace("/", "_")


def method_step(
    target: Target, method: str, call_id: str | None, options: dict[str, Any], args: Any, kwargs: Any
) -> Workflow[Any]:
    # The call id is part of the step's stored arguments, so a re-run of the step finds its commit.
    function = ActorMethodStep(target, method, build_options(None, **options))
    return Workflow(function, (target, method, call_id or new_call_id(), *args), kwargs)


def new_call_id() -> str:
    return uuid.uuid4().hex
