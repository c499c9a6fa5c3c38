"""Ray 1.x's ``ray.workflow`` for code written against it: ``from durably import workflow_v1 as workflow``.

Everything is ``durably.workflow``'s, except what 1.x did differently from 2.x: ``resume``
returns a handle to ``ray.get`` (a ``ray.ObjectRef``; a Future with the local executor), where
2.x's (and ``durably.workflow``'s) returns the value; and a step future's ``run()`` raises a
failed step as an error that is also a ``ray.exceptions.RaySystemError`` (1.x raised that, for an
exception and for a crashed worker alike), still a ``WorkflowExecutionError`` with the step's
error as its cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from durably import _step, _wait
from durably._errors import WorkflowExecutionError, also_instance_of
from durably._ids import validate_step_name
from durably._options import build_options
from durably.workflow import *  # noqa: F403
from durably.workflow import __all__ as _workflow_names
from durably.workflow import resume_async

__all__ = [*_workflow_names, "wait"]

R = TypeVar("R")

#: 1.x's resume: a handle to ``ray.get``, not the value.
resume = resume_async


# The three names below replace durably.workflow's (imported by the * above) with 1.x's.
class Workflow(_step.Workflow[R]):  # type: ignore[no-redef]
    """1.x's step future: as ``durably.workflow.Workflow``, but ``run()`` fails as 1.x did."""

    def run(
        self,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        retention: Any = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> R:
        """Run the workflow that ends at this step and return its value; a failed step raises an
        error that is both a ``WorkflowExecutionError`` and a ``RaySystemError``."""
        try:
            return super().run(
                workflow_id=workflow_id, metadata=metadata, retention=retention, runtime_env=runtime_env
            )
        except WorkflowExecutionError as error:
            from ray.exceptions import RaySystemError

            raise also_instance_of(error, RaySystemError) from error.__cause__


class StepFunction(_step.StepFunction[R]):  # type: ignore[no-redef]
    """1.x's step function: ``.step(...)`` builds a 1.x ``Workflow``."""

    def step(self, *args: Any, **kwargs: Any) -> Workflow[R]:
        validate_step_name(self.default_name)
        return Workflow(self, args, kwargs)


@overload  # type: ignore[no-redef]
def step(func: Callable[..., R]) -> StepFunction[R]: ...


@overload
def step(func: None = None, **options: Any) -> Callable[[Callable[..., R]], StepFunction[R]]: ...


def step(func: Callable[..., R] | None = None, **options: Any) -> Any:
    """``durably.workflow.step`` (same options), making 1.x step functions."""
    built = build_options(None, **options)
    if func is not None:
        return StepFunction(func, built)
    return lambda inner: StepFunction(inner, built)


def wait(
    step_futures: list[_step.Workflow[Any]], num_returns: int = 1, timeout: float | None = None
) -> Workflow[tuple[list[Any], list[_step.Workflow[Any]]]]:
    """A step future of ``(ready, remaining)``: the values of the first ``num_returns`` futures to
    finish (all that finished by then if ``timeout`` seconds passed first), in the order of
    ``step_futures``, and futures of the others.

    The remaining futures name the same steps, which go on running: pass them to later steps of
    the same workflow (or to ``wait`` again) and each consumes that step's one output. The
    outcome is checkpointed once, so every consumer, and a resumed workflow, sees the same split;
    ``timeout`` counts from when the wait step starts waiting in this run.
    """
    futures = _wait.check_wait_arguments(step_futures, num_returns, timeout)
    return Workflow(_wait.WaitFunction(_wait.WaitOptions(num_returns, timeout)), tuple(futures), {})
