"""Ray 1.x's ``workflow.wait``: a step future that waits for some of its inputs, and the futures it leaves.

The engine resolves a wait step itself (no worker runs it): once ``num_returns`` of its inputs
have a value, or its timeout passed, it checkpoints ``(ready values, remaining futures)`` once.
A remaining future is a :class:`RemainingStep`: it names the same step (same id, same spec), so
a later step that consumes it gets that step's one output instead of running it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from durably._options import StepOptions, build_options
from durably._step import StepFunction, Workflow

if TYPE_CHECKING:
    from durably._graph import StepSpec

WAIT_STEP_NAME = "wait"


@dataclass(frozen=True)
class WaitOptions:
    """How many inputs a wait step waits for, and for how long at most (seconds; None: no limit)."""

    num_returns: int
    timeout: float | None


def _resolved_by_the_engine(*futures: Any) -> NoReturn:
    raise AssertionError("a workflow.wait step is resolved by the engine; no worker calls it")


class WaitFunction(StepFunction[tuple[list[Any], list[Workflow[Any]]]]):
    """The step function of ``workflow.wait``: its ``wait_options`` say when the step is resolved."""

    def __init__(self, wait_options: WaitOptions, options: StepOptions | None = None) -> None:
        super().__init__(_resolved_by_the_engine, options or build_options(None))
        self.wait_options = wait_options

    @property
    def default_name(self) -> str:
        return self.step_options.name or WAIT_STEP_NAME

    def options(self, **options: Any) -> WaitFunction:
        return WaitFunction(self.wait_options, self.step_options.merged(**options))


def check_wait_arguments(futures: Any, num_returns: int, timeout: float | None) -> list[Workflow[Any]]:
    """The futures as a list, after checking every argument of ``workflow.wait``."""
    if isinstance(futures, Workflow) or not isinstance(futures, (list, tuple)):
        raise TypeError(
            "workflow.wait takes a list of step futures (results of f.step(...)), "
            f"got {type(futures).__name__}"
        )
    for position, future in enumerate(futures):
        if not isinstance(future, Workflow):
            raise TypeError(
                f"workflow.wait takes a list of step futures (results of f.step(...)); "
                f"item {position} is a {type(future).__name__}"
            )
    if len({id(future) for future in futures}) != len(futures):
        raise ValueError("workflow.wait takes each step future once; the list names one future twice")
    counted = isinstance(num_returns, int) and not isinstance(num_returns, bool)
    if not counted or not 1 <= num_returns <= len(futures):
        raise ValueError(
            f"workflow.wait's num_returns must be an int from 1 to the number of futures ({len(futures)}), "
            f"got {num_returns!r}"
        )
    seconds = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    if timeout is not None and (not seconds or timeout < 0):
        raise ValueError(f"workflow.wait's timeout must be seconds (a number >= 0) or None, got {timeout!r}")
    return list(futures)


class RemainingStep(Workflow[Any]):
    """A step future that ``workflow.wait`` returned unfinished: it names the step the wait watched.

    ``specs`` holds that step's spec last and the specs of the steps it depends on before it, so
    a workflow resumed in a new process can register them under their own ids again. It can
    only be passed to steps of the workflow that ran the wait.
    """

    def __init__(self, specs: list[StepSpec]) -> None:
        # No Workflow.__init__: there is no function call to encode, only the steps to name.
        self.specs = specs
        self.dependencies: list[Workflow[Any]] = []
        self.object_refs: list[Any] = []
        self.encoded_args = b""

    @property
    def step_id(self) -> str:
        return self.specs[-1].step_id

    @property
    def step_options(self) -> StepOptions:
        return self.specs[-1].options

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            f"step {self.step_id!r} was left running by workflow.wait; pass it to a step of the same "
            "workflow (or to workflow.wait again) instead of running it on its own"
        )

    run = _refuse  # type: ignore[assignment]
    run_async = _refuse  # type: ignore[assignment]
    options = _refuse  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<durably step future left by workflow.wait: {self.step_id}>"
