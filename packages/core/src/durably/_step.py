"""Step functions and the lazy step futures (``Workflow`` objects) that ``.step()`` builds."""

from __future__ import annotations

import functools
import hashlib
import sys
import sysconfig
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import cloudpickle

from durably import _codec
from durably._ids import validate_step_name
from durably._objects import is_object_ref
from durably._options import StepOptions, build_options

if TYPE_CHECKING:
    import concurrent.futures

    import ray

R = TypeVar("R")

_LIBRARY_PATHS = tuple(
    path for path in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], sys.prefix} if path
)


def _pickle_user_code_by_value(func: Callable[..., Any]) -> None:
    """Ship user code (not installed libraries) by value, so any worker or later driver can run it."""
    module_name = getattr(func, "__module__", None)
    module = sys.modules.get(module_name or "")
    if module is None or module_name in ("__main__", None):
        return
    path = getattr(module, "__file__", None) or ""
    if path and not path.startswith(_LIBRARY_PATHS) and not module_name.startswith("durably"):
        cloudpickle.register_pickle_by_value(module)


class PickledFunction:
    """A step function pickled once; ``key`` is a content hash, so equal functions are stored once."""

    __slots__ = ("data", "key")

    def __init__(self, func: Callable[..., Any]) -> None:
        _pickle_user_code_by_value(func)
        self.data = _codec.dumps(func)
        self.key = hashlib.sha256(self.data).hexdigest()[:24]


class StepFunction(Generic[R]):
    """A function decorated with ``@workflow.step``; call ``.step(...)`` to use it in a workflow."""

    #: True for the steps of ``wait_for_event``/``sleep``, which executors run without holding a worker.
    is_event_step = False

    def __init__(self, func: Callable[..., R], options: StepOptions) -> None:
        if not callable(func):
            raise TypeError(f"@workflow.step decorates a function, got {type(func).__name__}")
        self.func = func
        self.step_options = options
        self._pickled: PickledFunction | None = None
        functools.update_wrapper(self, func)

    @property
    def default_name(self) -> str:
        return self.step_options.name or str(getattr(self.func, "__name__", "step"))

    def pickled(self) -> PickledFunction:
        if self._pickled is None:
            self._pickled = PickledFunction(self.func)
        return self._pickled

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        raise TypeError(
            f"step function {self.default_name!r} cannot be called directly; "
            f"use {self.default_name}.step(...) to add it to a workflow, then .run() the result"
        )

    def step(self, *args: Any, **kwargs: Any) -> Workflow[R]:
        """A lazy future of this step applied to the arguments; nothing runs until ``.run()``."""
        validate_step_name(self.default_name)  # a function's own name may not be storable either
        return Workflow(self, args, kwargs)

    def options(self, **options: Any) -> StepFunction[R]:
        """The same step with some options changed (same names as ``@workflow.step``)."""
        copy = type(self)(self.func, self.step_options.merged(**options))
        copy._pickled = self._pickled
        return copy

    def __repr__(self) -> str:
        return f"<durably step {self.default_name}>"


@overload
def step(func: Callable[..., R]) -> StepFunction[R]: ...


@overload
def step(func: None = None, **options: Any) -> Callable[[Callable[..., R]], StepFunction[R]]: ...


def step(func: Callable[..., R] | None = None, **options: Any) -> Any:
    """Make a function a workflow step, bare (``@workflow.step``) or with options.

    Options: ``max_retries`` (3; 0 none; -1 forever), ``retry_exceptions`` (exception types that
    are retried; default every ``Exception``), ``retry_delay`` / ``max_retry_delay`` (exponential
    backoff between attempts, seconds), ``catch_exceptions`` (the step yields ``(result, None)``
    or ``(None, error)`` instead of failing), ``name``, ``metadata`` (a JSON-serialisable dict),
    ``checkpoint`` (False: the output is not stored and is recomputed on resume), and any Ray
    task option (``num_cpus``, ``num_gpus``, ``resources``, ``runtime_env``, ...).
    """
    built = build_options(None, **options)
    if func is not None:
        return StepFunction(func, built)
    return lambda inner: StepFunction(inner, built)


class _DependencyCollector:
    """Replaces step futures nested anywhere in the arguments by persistent ids while pickling."""

    def __init__(self) -> None:
        self.dependencies: list[Workflow[Any]] = []
        self._positions: dict[int, int] = {}
        self.object_refs: list[Any] = []

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, Workflow):
            position = self._positions.get(id(obj))
            if position is None:
                position = len(self.dependencies)
                self._positions[id(obj)] = position
                self.dependencies.append(obj)
            return ("dep", position)
        if is_object_ref(obj):
            # Stored by value when the workflow is created, so a resume on a new cluster has it.
            self.object_refs.append(obj)
            return ("objref-arg", len(self.object_refs) - 1)
        return None


def _name_unpicklable_argument(step_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def nothing(obj: Any) -> Any:
        return ("dep", 0) if isinstance(obj, Workflow) or is_object_ref(obj) else None

    labelled = [(f"positional argument {index}", value) for index, value in enumerate(args)]
    labelled += [(f"keyword argument {name!r}", value) for name, value in kwargs.items()]
    for label, value in labelled:
        try:
            _codec.dumps_with(value, nothing)
        except Exception as exc:
            return (
                f"{label} of step {step_name!r} ({type(value).__name__}) cannot be pickled, "
                f"so it cannot be checkpointed: {type(exc).__name__}: {exc}"
            )
    return f"the arguments of step {step_name!r} cannot be pickled"


class Workflow(Generic[R]):
    """A lazy step future: a step applied to arguments, possibly other step futures.

    ``run()`` executes the graph that ends here durably and returns its value.
    """

    def __init__(self, function: StepFunction[R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.function = function
        collector = _DependencyCollector()
        try:
            self.encoded_args = _codec.dumps_with((args, kwargs), collector)
        except Exception as exc:
            raise TypeError(_name_unpicklable_argument(function.default_name, args, kwargs)) from exc
        self.dependencies = collector.dependencies
        self.object_refs = collector.object_refs

    @property
    def step_options(self) -> StepOptions:
        return self.function.step_options

    def options(self, **options: Any) -> Workflow[R]:
        """This step future with some step options changed (``name=``, ``max_retries=``, ...), as 1.x had."""
        changed: Workflow[R] = object.__new__(type(self))
        changed.__dict__.update(self.__dict__)
        changed.function = self.function.options(**options)
        return changed

    def run(
        self,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        retention: Any = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> R:
        """Run the workflow that ends at this step to completion and return its value.

        ``retention`` (a timedelta, seconds or text such as ``"30d"``) overrides ``init``'s: how
        long the workflow is kept once it finished.
        """
        # The one upward import of the layering (pyproject.toml, import-linter): a convenience
        # for workflow.run(self), from the model of a workflow up to where runs start.
        from durably import _launch

        return _launch.run(  # type: ignore[no-any-return]
            self, workflow_id=workflow_id, metadata=metadata, retention=retention, runtime_env=runtime_env
        )

    def run_async(
        self,
        workflow_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        retention: Any = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> ray.ObjectRef[R] | concurrent.futures.Future[R]:
        """Start the workflow; returns a ``ray.ObjectRef`` (a Future with the local executor)."""
        from durably import _launch

        handle: ray.ObjectRef[R] | concurrent.futures.Future[R] = _launch.run_async(
            self, workflow_id=workflow_id, metadata=metadata, retention=retention, runtime_env=runtime_env
        )
        return handle

    def __repr__(self) -> str:
        return f"<durably step future {self.function.default_name}({len(self.dependencies)} inputs)>"
