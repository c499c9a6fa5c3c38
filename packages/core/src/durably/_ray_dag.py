"""Ray 2.x workflow code on durably: Ray DAGs (``f.bind(...)``) become durably step futures.

``ray.workflow`` 2.x ran DAGs of ``@ray.remote`` functions; this module converts such a DAG,
without recursion, into the ``Workflow`` futures that ``@workflow.step`` builds, so that code
moves to durably by changing its import. Each remote function becomes a ``StepFunction`` whose
Ray options (``max_retries``, ``retry_exceptions``, ``num_cpus``, ...) and workflow options
(``workflow.options(task_id=..., metadata=...)``) become the step's options.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import importlib
import inspect
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from durably import _config, _launch
from durably._inspect import existing_store, output_of, step_name
from durably._options import build_options
from durably._runner import INSIDE_STEP
from durably._step import PickledFunction, StepFunction, Workflow
from durably._store import open_workflow_store

if TYPE_CHECKING:
    import ray

#: Where Ray 2.x kept workflow options among a remote function's options: ``_metadata[...]``.
WORKFLOW_OPTIONS = "workflow.io/options"

#: The keys ``workflow.options`` accepts (Ray 2.x's four, the retry settings of 2.0, and durably's
#: retry backoff).
WORKFLOW_OPTION_NAMES = (
    "task_id",
    "metadata",
    "catch_exceptions",
    "checkpoint",
    "max_retries",
    "retry_exceptions",
    "retry_delay",
    "max_retry_delay",
)

#: Ray task options that cannot be applied to one call: ``max_calls`` is per worker, not per task.
_DROPPED_RAY_OPTIONS = ("max_calls", "name")

#: Ray's defaults for the options it retries with: 3 system-failure retries, no exception retries.
_RAY_DEFAULT_MAX_RETRIES = 3
_RAY_DEFAULT_RETRY_EXCEPTIONS = False
#: Ray resubmits a failed task at once (its ``task_retry_delay_ms`` is 0), so a remote function's
#: exception retries start at once too unless ``workflow.options(retry_delay=...)`` asks for backoff.
_RAY_RETRY_DELAY = 0.0

_SUPPORTED = (
    "durably runs Ray DAGs of remote functions (f.bind(...)) with InputNode arguments; "
    "for stateful actors use @workflow.virtual_actor"
)

_in_remote_function: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "durably_in_remote_function", default=False
)


class options(Mapping[str, Any]):  # named as in Ray 2.x
    """Workflow options for a Ray remote function, as in Ray 2.x.

    Spread into ``.options``: ``f.options(**workflow.options(task_id="a", metadata={...})).bind()``,
    or decorate: ``@workflow.options(catch_exceptions=True)`` above ``@ray.remote``. Accepts
    ``task_id`` (the step's name: ``get_output(id, task_id=...)``), ``metadata``,
    ``catch_exceptions``, ``checkpoint``, ``max_retries``, ``retry_exceptions`` and durably's
    ``retry_delay`` / ``max_retry_delay`` (a remote function's exceptions are retried at once, as
    Ray resubmitted a failed task at once, unless ``retry_delay`` asks for exponential backoff);
    values are checked here, so mistakes surface where they are written.
    """

    def __init__(self, **workflow_options: Any) -> None:
        unknown = sorted(set(workflow_options) - set(WORKFLOW_OPTION_NAMES))
        if unknown:
            raise ValueError(
                f"invalid workflow option(s) {', '.join(unknown)}; "
                f"valid ones are {', '.join(WORKFLOW_OPTION_NAMES)}"
            )
        _step_options_from(workflow_options, {})  # validate now, not when the DAG runs
        _let_ray_accept_metadata_option()
        self.workflow_options = dict(workflow_options)
        self._options = {"_metadata": {WORKFLOW_OPTIONS: self.workflow_options}}

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __call__(self, remote_function: Any) -> Any:
        """Set these options as the defaults of a Ray remote function; returns it."""
        from ray.remote_function import RemoteFunction

        if not isinstance(remote_function, RemoteFunction):
            raise TypeError(
                "@workflow.options decorates a Ray remote function (@ray.remote), "
                f"got {type(remote_function).__name__}"
            )
        defaults = remote_function._default_options
        metadata = dict(defaults.get("_metadata") or {})
        metadata[WORKFLOW_OPTIONS] = self.workflow_options
        defaults["_metadata"] = metadata
        return remote_function

    def __repr__(self) -> str:
        return f"workflow.options({', '.join(f'{k}={v!r}' for k, v in self.workflow_options.items())})"


def _let_ray_accept_metadata_option() -> None:
    """Ray removed its ``_metadata`` task option together with ``ray.workflow`` (after 2.47);
    accept it again, so ``f.options(**workflow.options(...))`` works on every Ray 2.x."""
    for module_name in ("ray._common.ray_option_utils", "ray._private.ray_option_utils"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        table = getattr(module, "task_options", None)
        if isinstance(table, dict) and "_metadata" not in table:
            table["_metadata"] = module.Option((dict, type(None)))
        return


def _step_options_from(workflow_options: Mapping[str, Any], ray_options: dict[str, Any]) -> Any:
    """durably StepOptions from Ray 2.x workflow options and (already popped) Ray retry options."""
    given: dict[str, Any] = {
        "max_retries": workflow_options.get(
            "max_retries", ray_options.pop("max_retries", _RAY_DEFAULT_MAX_RETRIES)
        ),
        "retry_exceptions": workflow_options.get(
            "retry_exceptions", ray_options.pop("retry_exceptions", _RAY_DEFAULT_RETRY_EXCEPTIONS)
        ),
        "retry_delay": workflow_options.get("retry_delay", _RAY_RETRY_DELAY),
    }
    if workflow_options.get("task_id") is not None:
        given["name"] = workflow_options["task_id"]
    for key in ("metadata", "catch_exceptions", "checkpoint", "max_retry_delay"):
        if workflow_options.get(key) is not None:
            given[key] = workflow_options[key]
    try:
        return build_options(None, **given)
    except ValueError as exc:
        raise ValueError(str(exc).replace("step name", "task_id")) from None


class RemoteFunctionBody:
    """The Python function of a Ray remote function, run as a durably step.

    While it runs, ``workflow.continuation`` knows it is inside a workflow; a Ray DAG that the
    function returns becomes its continuation.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        # Seen by durably's pickling: user code travels by value, as for @workflow.step.
        self.__module__ = getattr(function, "__module__", None) or __name__
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__doc__ = getattr(function, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _in_remote_function.set(True)
        try:
            result = self.function(*args, **kwargs)
        finally:
            _in_remote_function.reset(token)
        from ray.dag import DAGNode

        if isinstance(result, DAGNode):
            return to_workflow(result, (), {})
        return result

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteFunctionBody, (self.function,))


# One pickled copy per remote function for the life of the function, shared by every DAG.
_pickled_bodies: dict[int, tuple[weakref.ref[Any], PickledFunction]] = {}
_pickled_lock = threading.Lock()


def _pickled_body(function: Callable[..., Any], body: RemoteFunctionBody) -> PickledFunction:
    key = id(function)
    entry = _pickled_bodies.get(key)
    if entry is not None and entry[0]() is function:
        return entry[1]
    pickled = PickledFunction(body)

    def forget(_: Any, key: int = key) -> None:
        _pickled_bodies.pop(key, None)

    try:
        reference = weakref.ref(function, forget)
    except TypeError:  # not weakly referenceable: no cache, pickled per DAG
        return pickled
    with _pickled_lock:
        _pickled_bodies[key] = (reference, pickled)
    return pickled


class _StepFunctions:
    """The StepFunction of each (remote function, options) pair of one DAG, built once."""

    def __init__(self) -> None:
        self._by_options: dict[tuple[int, int], StepFunction[Any]] = {}

    def for_node(self, node: Any) -> StepFunction[Any]:
        function, bound_options = node._body, node._bound_options
        key = (id(function), id(bound_options))
        found = self._by_options.get(key)
        if found is None:
            body = RemoteFunctionBody(function)
            found = StepFunction(body, _options_of(node))
            found._pickled = _pickled_body(function, body)
            self._by_options[key] = found
        return found


def _options_of(node: Any) -> Any:
    """The durably options of a FunctionNode: workflow options + Ray's retries + the other Ray options."""
    ray_options = {key: value for key, value in node._bound_options.items() if value is not None}
    num_returns = ray_options.pop("num_returns", 1)
    if num_returns != 1:
        raise ValueError(
            f"remote function {_function_name(node)!r} has num_returns={num_returns!r}; "
            "a workflow step returns exactly one value (return a tuple instead)"
        )
    # The workflow options ride in Ray's `_metadata` option, which Ray tasks themselves ignore.
    workflow_options = (ray_options.pop("_metadata", None) or {}).get(WORKFLOW_OPTIONS) or {}
    for key in _DROPPED_RAY_OPTIONS:
        ray_options.pop(key, None)
    step_options = _step_options_from(workflow_options, ray_options)
    # Ray has already validated its own options; pass them through to the step's Ray task as they are.
    return dataclasses.replace(step_options, ray_options=ray_options)


def _function_name(node: Any) -> str:
    return str(getattr(node._body, "__qualname__", None) or getattr(node._body, "__name__", "function"))


def _nested_output(value: Any) -> Any:
    """An output nested in a container argument: an ObjectRef inside a Ray task, as Ray passes it.

    Ray resolves only top-level ``ObjectRef`` arguments; one inside a list or dict arrives as
    an ``ObjectRef`` (``ray.get`` it). On the local executor there is no object store, so the
    value itself arrives.
    """
    import ray

    if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
        if isinstance(value, ray.ObjectRef):
            # The output is itself an ObjectRef (a step returned one): Ray passes a ref to that
            # ref, and ray.put refuses refs; a task that returns it makes one.
            global _ref_holder
            if _ref_holder is None:
                _ref_holder = ray.remote(num_cpus=0)(_first)
            return _ref_holder.remote([value])
        return ray.put(value)
    return value


_ref_holder: Any = None


def _first(box: list[Any]) -> Any:
    return box[0]


class _NestedOutput:
    """Marks a step future nested in a container argument; unpickles through ``_nested_output``."""

    __slots__ = ("future",)

    def __init__(self, future: Workflow[Any]) -> None:
        self.future = future

    def __reduce__(self) -> tuple[Any, ...]:
        return (_nested_output, (self.future,))


def _input_value(node: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The value an InputNode or InputAttributeNode stands for, from ``run(dag, *args, **kwargs)``."""
    from ray.dag import InputNode
    from ray.dag.input_node import DAGInputData, InputAttributeNode

    if isinstance(node, InputNode):
        if len(args) == 1 and not kwargs:
            return args[0]
        several: Any = DAGInputData  # Ray's own holder of several inputs, indexable like Ray's
        return several(*args, **kwargs)
    assert isinstance(node, InputAttributeNode)
    key = node._key
    if isinstance(key, int):
        if not -len(args) <= key < len(args):
            raise TypeError(
                f"the DAG reads input [{key}] but workflow.run got {len(args)} positional argument(s)"
            )
        return args[key]
    if key not in kwargs:
        raise TypeError(f"the DAG reads input {key!r} but workflow.run got no keyword argument {key!r}")
    return kwargs[key]


def _children(node: Any) -> list[Any]:
    """Every DAG node in the node's arguments, nested or not, each once."""
    found = getattr(node, "_upstream_nodes", None)
    if found is None:
        found = node._get_all_child_nodes()
    unique: dict[int, Any] = {}
    for child in found:
        unique.setdefault(id(child), child)
    return list(unique.values())


def _bound_arguments(node: Any, converted: dict[int, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The node's arguments with DAG nodes replaced: top-level ones by their value, nested ones
    by an ObjectRef-to-be (Ray's rule for outputs inside containers)."""
    from ray.dag import DAGNode
    from ray.dag.py_obj_scanner import _PyObjScanner

    args, kwargs = list(node._bound_args), dict(node._bound_kwargs)
    top_level = sum(isinstance(value, DAGNode) for value in (*args, *kwargs.values()))
    upstream = getattr(node, "_upstream_nodes", None)
    if upstream is None or len(upstream) != top_level:  # some DAG nodes sit inside containers
        scanner: Any = _PyObjScanner(source_type=DAGNode)
        try:
            table = {}
            for child in scanner.find_nodes([args, kwargs]):
                value = converted[id(child)]
                table[child] = _NestedOutput(value) if isinstance(value, Workflow) else value
            nested_args, nested_kwargs = scanner.replace_nodes(table)
        finally:
            scanner.clear()
        args = [value if isinstance(value, DAGNode) else nested_args[i] for i, value in enumerate(args)]
        kwargs = {k: value if isinstance(value, DAGNode) else nested_kwargs[k] for k, value in kwargs.items()}

    def argument(value: Any) -> Any:
        return converted[id(value)] if isinstance(value, DAGNode) else _top_level(value)

    return tuple(argument(value) for value in args), {k: argument(value) for k, value in kwargs.items()}


def _top_level(value: Any) -> Any:
    """A top-level argument as a Ray task receives it: an ObjectRef given to ``.bind`` is its value.

    (Fetched here, once: the step's checkpoint of its arguments keeps the value durably.)
    (Not outputs of other steps: a step that returned an ObjectRef hands on an ObjectRef, as Ray
    did.) Nested ObjectRefs stay refs, as in Ray.
    """
    import ray

    if isinstance(value, ray.ObjectRef):
        return ray.get(value)
    return value


def _check_supported(node: Any) -> None:
    from ray.dag import DAGNode, FunctionNode, InputNode
    from ray.dag.input_node import InputAttributeNode

    if isinstance(node, (FunctionNode, InputNode, InputAttributeNode)):
        return
    kind = type(node).__name__
    if kind in ("ClassNode", "ClassMethodNode"):
        raise TypeError(f"{kind} (a Ray actor or actor method call) cannot be a workflow step: {_SUPPORTED}")
    if isinstance(node, DAGNode):
        raise TypeError(f"{kind} is not supported in a workflow: {_SUPPORTED}")


def _check_signature(node: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Arguments that the function cannot take fail before anything runs, as Ray's did."""
    try:
        signature = inspect.signature(node._body)
    except (TypeError, ValueError):  # a callable without a signature: Ray checks at call time
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"remote function {_function_name(node)!r} cannot take the arguments given to .bind(): {exc}"
        ) from None


def to_workflow(dag: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Workflow[Any]:
    """The durably step future of a Ray DAG, its InputNodes filled from ``args``/``kwargs``.

    Post-order with an explicit stack, so 10,000-deep chains convert without recursion.
    """
    from ray.dag import FunctionNode
    from ray.dag.input_node import InputAttributeNode, InputNode

    _check_supported(dag)
    if not isinstance(dag, FunctionNode):
        raise TypeError(
            f"a workflow must end in a remote function call (f.bind(...)), got {type(dag).__name__}"
        )
    functions = _StepFunctions()
    converted: dict[int, Any] = {}
    stack: list[tuple[Any, bool]] = [(dag, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in converted:
            continue
        if isinstance(node, (InputNode, InputAttributeNode)):
            converted[id(node)] = _input_value(node, args, kwargs)
            continue
        if not expanded:
            stack.append((node, True))
            for child in reversed(_children(node)):
                if id(child) not in converted:
                    _check_supported(child)
                    stack.append((child, False))
            continue
        call_args, call_kwargs = _bound_arguments(node, converted)
        _check_signature(node, call_args, call_kwargs)
        converted[id(node)] = Workflow(functions.for_node(node), call_args, call_kwargs)
    result: Workflow[Any] = converted[id(dag)]
    return result


def as_workflow(dag: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Workflow[Any]:
    """A durably step future as is, or a Ray DAG converted; anything else is a TypeError."""
    if isinstance(dag, Workflow):
        if args or kwargs:
            raise TypeError("input arguments fill a Ray DAG's InputNode; a durably step future takes none")
        return dag
    from ray.dag import DAGNode

    if isinstance(dag, DAGNode):
        return to_workflow(dag, args, kwargs)
    raise TypeError(
        "workflow.run takes a Ray DAG (f.bind(...) of a @ray.remote function) or a durably step future "
        f"(f.step(...)), got {type(dag).__name__}"
    )


# -- the Ray 2.x functions of ``durably.workflow`` ------------------------------------------------
def run(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Any = None,
    runtime_env: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run a workflow to completion and return its output (Ray 2.x's ``workflow.run``).

    ``dag`` is a Ray DAG (``f.bind(...)``; ``args``/``kwargs`` fill its ``InputNode``) or a
    durably step future. If a workflow with this id exists, it is resumed instead.
    ``retention`` and ``runtime_env`` (the code snapshot) override ``init``'s for this workflow.
    """
    workflow = as_workflow(dag, args, kwargs)
    return _launch.run(
        workflow, workflow_id=workflow_id, metadata=metadata, retention=retention, runtime_env=runtime_env
    )


def run_async(
    dag: Any,
    *args: Any,
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Any = None,
    runtime_env: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ray.ObjectRef[Any] | concurrent.futures.Future[Any]:
    """Start a workflow; returns a ``ray.ObjectRef`` of its output (a Future with the local executor)."""
    workflow = as_workflow(dag, args, kwargs)
    handle: Any = _launch.run_async(
        workflow, workflow_id=workflow_id, metadata=metadata, retention=retention, runtime_env=runtime_env
    )
    return handle  # type: ignore[no-any-return]


def continuation(dag: Any) -> Any:
    """Return ``dag`` from a step to continue the workflow with it (Ray 2.x's ``workflow.continuation``).

    Inside a remote function that durably runs, the DAG becomes the step's continuation: the
    step's output is the DAG's output, durably. Anywhere else, as in Ray, the DAG is executed
    with plain Ray and its value returned. A durably step future is returned as it is.
    """
    if isinstance(dag, Workflow):
        return dag
    from ray.dag import DAGNode

    if not isinstance(dag, DAGNode):
        raise TypeError(f"workflow.continuation takes a Ray DAG (f.bind(...)), got {type(dag).__name__}")
    if _in_remote_function.get() or INSIDE_STEP.get():
        return to_workflow(dag, (), {})
    import ray

    outputs: Any = dag.execute()
    return ray.get(outputs)


_output_threads: concurrent.futures.ThreadPoolExecutor | None = None
_remote_output_reader: Any = None


def _read_output(storage_url: str, workflow_id: str, name: str | None, driving: Any) -> Any:
    """``get_output`` in a thread or Ray task; ``driving`` is the host that started the workflow
    (asked, while the workflow's engine has not taken its lease yet, whether it still runs it)."""
    return output_of(
        open_workflow_store(storage_url, workflow_id), name, None, lambda: driving.driving(storage_url)
    )


def get_output_async(
    workflow_id: str, name: str | None = None, *, task_id: str | None = None
) -> ray.ObjectRef[Any] | concurrent.futures.Future[Any]:
    """Like ``get_output``, without waiting: a ``ray.ObjectRef`` (a Future with the local executor)."""
    global _output_threads, _remote_output_reader
    cfg = _config.current()
    existing_store(workflow_id)  # an unknown id fails here, not in the handle
    wanted = step_name(name, task_id)
    if cfg.has_cluster_host:  # read in the cluster, so the handle is a ray.ObjectRef
        import ray

        if _remote_output_reader is None:
            _remote_output_reader = ray.remote(num_cpus=0, max_retries=0)(_read_output)
        handle: Any = _remote_output_reader.remote(cfg.storage_url, workflow_id, wanted, cfg.host)
        return handle  # type: ignore[no-any-return]
    if _output_threads is None:
        _output_threads = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="durably-output")
    return _output_threads.submit(_read_output, cfg.storage_url, workflow_id, wanted, cfg.host)
