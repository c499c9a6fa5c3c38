"""Ray 2.x workflow code (``@ray.remote``, ``.bind()``, ``workflow.run(dag)``) runs on durably unchanged.

The behaviours are those Ray's own workflow tests checked (basic DAGs, InputNode, continuations,
error handling, recovery, metadata, cancellation), on both durably executors.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
from durably_test_helpers import count_runs, record_run
from ray.dag import InputNode

from durably import _ray_dag, workflow
from durably._graph import flatten

pytestmark = pytest.mark.workflow

# Plain Ray (not durably) pickles these functions in one test; its workers cannot import this file.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote
def double(x: int) -> int:
    return 2 * x


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


def _values(items: Any) -> list[Any]:
    """Ray hands outputs nested in a list over as ObjectRefs (the local executor: as values)."""
    return [ray.get(item) if isinstance(item, ray.ObjectRef) else item for item in items]


@ray.remote
def total(items: list[Any]) -> int:
    return sum(_values(items))


@ray.remote
def kinds(items: list[Any], named: dict[str, Any]) -> list[str]:
    return [type(item).__name__ for item in [*items, *named.values()]]


@ray.remote
def counted(counter_dir: str, name: str, value: Any) -> Any:
    record_run(counter_dir, name)
    return value


@ray.remote
def gate(counter_dir: str, value: Any) -> Any:
    record_run(counter_dir, "gate")
    if not (Path(counter_dir) / "open").exists():
        raise RuntimeError("the gate is closed")
    return value


@ray.remote
def fail_until(counter_dir: str, failures: int, error: str = "ValueError") -> int:
    record_run(counter_dir, "attempt")
    attempts = count_runs(Path(counter_dir), "attempt")
    if attempts <= failures:
        raise {"ValueError": ValueError, "KeyError": KeyError}[error](f"attempt {attempts} fails")
    return attempts


@ray.remote
def wait_for_file(path: str) -> str:
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "woke"


# -- basic DAGs ---------------------------------------------------------------------------------
@pytest.mark.storage_on_ray
def test_chain_of_remote_functions_runs_by_changing_the_import(wf: Any) -> None:
    dag = double.bind(double.bind(3))
    assert wf.run(dag, workflow_id="d") == 12
    assert wf.get_status("d") == wf.WorkflowStatus.SUCCESSFUL


def test_diamond_runs_the_shared_step_once(wf: Any, counter_dir: Path) -> None:
    top = counted.bind(str(counter_dir), "top", 5)
    dag = add.bind(double.bind(top), add.bind(top, 1))
    assert wf.run(dag) == 10 + 6
    assert count_runs(counter_dir, "top") == 1


def test_fan_in_of_a_list_of_dags(wf: Any) -> None:
    assert wf.run(total.bind([double.bind(i) for i in range(5)])) == 2 * (0 + 1 + 2 + 3 + 4)


def test_outputs_nested_in_containers_arrive_as_ray_does_it(wf: Any, executor: str) -> None:
    got = wf.run(kinds.bind([double.bind(1), 7], named={"x": double.bind(2)}))
    nested = "ObjectRef" if executor == "ray" else "int"
    assert got == [nested, "int", nested]


def test_top_level_dag_arguments_arrive_as_values(wf: Any) -> None:
    @ray.remote
    def types_of(a: Any, b: Any) -> list[str]:
        return [type(a).__name__, type(b).__name__]

    assert wf.run(types_of.bind(double.bind(1), b=double.bind(2))) == ["int", "int"]


def test_run_with_an_existing_id_returns_the_stored_output(wf: Any, counter_dir: Path) -> None:
    dag = counted.bind(str(counter_dir), "once", "value")
    assert wf.run(dag, workflow_id="again") == "value"
    assert wf.run(counted.bind(str(counter_dir), "once", "other"), workflow_id="again") == "value"
    assert count_runs(counter_dir, "once") == 1


def test_run_async_returns_the_executors_handle(wf: Any, executor: str) -> None:
    handle = wf.run_async(double.bind(21), workflow_id="later")
    value = ray.get(handle) if executor == "ray" else handle.result()
    assert value == 42
    assert wf.get_output("later") == 42


def test_run_still_accepts_a_durably_step_future(wf: Any) -> None:
    @workflow.step
    def triple(x: int) -> int:
        return 3 * x

    assert wf.run(triple.step(triple.step(2))) == 18


def test_run_rejects_what_is_not_a_dag(wf: Any) -> None:
    with pytest.raises(TypeError, match="Ray DAG"):
        wf.run(42)
    with pytest.raises(TypeError, match="remote function call"), InputNode() as inp:
        wf.run(inp, 1)


# -- InputNode ----------------------------------------------------------------------------------
def test_input_node_is_filled_from_run_arguments(wf: Any) -> None:
    with InputNode() as inp:
        dag = add.bind(double.bind(inp[0]), add.bind(inp.x, inp[1]))
    assert wf.run(dag, 5, 100, x=7) == 10 + 107


def test_a_whole_input_node_is_the_single_argument(wf: Any) -> None:
    with InputNode() as inp:
        dag = double.bind(inp)
    assert wf.run(dag, 21) == 42


def test_an_input_that_run_did_not_get_is_a_type_error(wf: Any) -> None:
    with InputNode() as inp:
        dag = add.bind(inp[0], inp.y)
    with pytest.raises(TypeError, match="no keyword argument 'y'"):
        wf.run(dag, 1)
    with pytest.raises(TypeError, match=r"input \[0\]"):
        wf.run(dag, y=1)


# -- continuations ------------------------------------------------------------------------------
@ray.remote
def fibonacci(n: int) -> Any:
    if n <= 1:
        return n
    return workflow.continuation(add.bind(fibonacci.bind(n - 1), fibonacci.bind(n - 2)))


@ray.remote
def factorial(n: int, product: int = 1) -> Any:
    if n <= 1:
        return product
    return workflow.continuation(factorial.bind(n - 1, product * n))


def test_recursive_fibonacci_with_continuations(wf: Any) -> None:
    assert wf.run(fibonacci.bind(10)) == 55


def test_tail_recursive_factorial_with_continuations(wf: Any) -> None:
    assert wf.run(factorial.bind(30), workflow_id="fact") == 265252859812191058636308480000000


@ray.remote
def returns_a_bare_dag(x: int) -> Any:
    return double.bind(x)


def test_a_returned_dag_continues_the_workflow_too(wf: Any) -> None:
    assert wf.run(returns_a_bare_dag.bind(4)) == 8


def test_continuation_outside_a_workflow_runs_the_dag_with_plain_ray(ray_cluster: Any) -> None:
    assert workflow.continuation(factorial.bind(5)) == 120
    assert ray.get(factorial.bind(5).execute()) == 120


def test_continuation_rejects_what_is_not_a_dag() -> None:
    with pytest.raises(TypeError, match="Ray DAG"):
        workflow.continuation(42)


# -- error handling -----------------------------------------------------------------------------
def test_a_plain_remote_function_does_not_retry_application_errors(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(wf.WorkflowExecutionError, match="attempt 1 fails"):
        wf.run(fail_until.bind(str(counter_dir), 1))
    assert count_runs(counter_dir, "attempt") == 1


def test_retry_exceptions_on_the_remote_function_retries_up_to_max_retries(
    wf: Any, counter_dir: Path
) -> None:
    retried = ray.remote(max_retries=2, retry_exceptions=True)(fail_until._function)
    assert wf.run(retried.bind(str(counter_dir), 2)) == 3
    with pytest.raises(wf.WorkflowExecutionError, match="attempt 6 fails"):
        wf.run(retried.bind(str(counter_dir), 10))
    assert count_runs(counter_dir, "attempt") == 3 + 3


def test_retry_options_given_in_dot_options_are_honoured(wf: Any, counter_dir: Path) -> None:
    dag = fail_until.options(max_retries=1, retry_exceptions=True).bind(str(counter_dir), 5)
    with pytest.raises(wf.WorkflowExecutionError):
        wf.run(dag)
    assert count_runs(counter_dir, "attempt") == 2


def test_retry_exceptions_list_retries_only_those_types(wf: Any, counter_dir: Path) -> None:
    only_key_errors = fail_until.options(max_retries=3, retry_exceptions=[KeyError])
    with pytest.raises(wf.WorkflowExecutionError):
        wf.run(only_key_errors.bind(str(counter_dir), 1, "ValueError"))
    assert count_runs(counter_dir, "attempt") == 1
    assert wf.run(only_key_errors.bind(str(counter_dir), 2, "KeyError")) == 3


def test_catch_exceptions_returns_the_error_instead_of_failing(wf: Any, counter_dir: Path) -> None:
    caught = fail_until.options(**workflow.options(catch_exceptions=True))
    result, error = wf.run(caught.bind(str(counter_dir), 1))
    assert result is None
    assert isinstance(error, ValueError)
    assert wf.run(caught.bind(str(counter_dir), 1)) == (2, None)


@ray.remote
def fails_deep_inside(depth: int) -> Any:
    if depth == 0:
        raise ValueError("at the bottom")
    return workflow.continuation(fails_deep_inside.bind(depth - 1))


def test_catch_exceptions_covers_the_steps_continuations(wf: Any) -> None:
    dag = fails_deep_inside.options(**workflow.options(catch_exceptions=True)).bind(3)
    result, error = wf.run(dag)
    assert result is None
    assert isinstance(error, ValueError)
    assert "at the bottom" in str(error)


# -- recovery -----------------------------------------------------------------------------------
def test_resume_runs_only_the_unfinished_steps(wf: Any, counter_dir: Path) -> None:
    before = counted.bind(str(counter_dir), "before", 1)
    dag = add.bind(before, gate.bind(str(counter_dir), 2))
    with pytest.raises(wf.WorkflowExecutionError, match="the gate is closed"):
        wf.run(dag, workflow_id="recover")
    assert wf.get_status("recover") == wf.WorkflowStatus.FAILED
    (counter_dir / "open").touch()
    assert wf.resume("recover") == 3
    assert count_runs(counter_dir, "before") == 1
    assert count_runs(counter_dir, "gate") == 2
    assert wf.get_status("recover") == wf.WorkflowStatus.SUCCESSFUL


def test_get_output_of_a_failed_workflow_raises_an_error_of_the_step_error_type(wf: Any) -> None:
    # Ray's get_output raised the task's own error type; durably's error is also that type.
    @ray.remote
    def rejects() -> int:
        raise LookupError("no row 7")

    with pytest.raises(wf.WorkflowExecutionError):
        wf.run(rejects.options(max_retries=0).bind(), workflow_id="rejected")
    with pytest.raises(LookupError, match="no row 7") as raised:
        wf.get_output("rejected")
    assert isinstance(raised.value, wf.WorkflowExecutionError)
    assert isinstance(raised.value.__cause__, LookupError)


def test_an_error_of_the_step_error_type_survives_pickling(wf: Any) -> None:
    @ray.remote
    def rejects() -> int:
        raise LookupError("no row 7")

    with pytest.raises(wf.WorkflowExecutionError):
        wf.run(rejects.options(max_retries=0).bind(), workflow_id="rejected")
    with pytest.raises(LookupError) as raised:
        wf.get_output("rejected")
    copy = pickle.loads(pickle.dumps(raised.value))
    assert isinstance(copy, LookupError)
    assert isinstance(copy, wf.WorkflowExecutionError)
    assert str(copy) == str(raised.value)


# -- task ids and metadata ----------------------------------------------------------------------
def test_task_id_names_the_step_for_get_output(wf: Any, executor: str) -> None:
    first = double.options(**workflow.options(task_id="first")).bind(5)
    wf.run(add.bind(first, 1), workflow_id="named")
    assert wf.get_output("named", task_id="first") == 10
    assert wf.get_output("named", name="first") == 10
    handle = wf.get_output_async("named", task_id="first")
    assert (ray.get(handle) if executor == "ray" else handle.result()) == 10


def test_get_output_async_of_a_task_right_after_run_async_waits_for_it(
    wf: Any, executor: str, tmp_path: Path
) -> None:
    # Asked before the workflow's engine has started it: the reader must wait, not say that
    # nothing runs the workflow.
    gate = tmp_path / "gate"

    @ray.remote
    def gated(path: str) -> int:
        while not os.path.exists(path):
            time.sleep(0.05)
        return 7

    run = wf.run_async(
        gated.options(**workflow.options(task_id="gated")).bind(str(gate)), workflow_id="early"
    )
    output = wf.get_output_async("early", task_id="gated")
    gate.touch()
    assert (ray.get(output) if executor == "ray" else output.result()) == 7
    assert (ray.get(run) if executor == "ray" else run.result()) == 7


def test_task_id_inside_a_continuation_is_found_by_get_output(wf: Any) -> None:
    @ray.remote
    def outer(x: int) -> Any:
        return workflow.continuation(add.bind(double.options(**workflow.options(task_id="inner")).bind(x), 1))

    assert wf.run(outer.bind(4), workflow_id="dynamic") == 9
    assert wf.get_output("dynamic", task_id="inner") == 8


def test_metadata_of_the_workflow_and_of_a_task(wf: Any) -> None:
    trip = add.options(**workflow.options(task_id="trip", metadata={"k1": "v1"})).bind(1, 2)
    wf.run(trip, workflow_id="trip1", metadata={"k2": "v2"})
    workflow_meta = wf.get_metadata("trip1")
    assert workflow_meta["status"] == "SUCCESSFUL"
    assert workflow_meta["user_metadata"] == {"k2": "v2"}
    task_meta = wf.get_metadata("trip1", task_id="trip")
    assert task_meta["user_metadata"] == {"k1": "v1"}
    assert task_meta["stats"]["start_time"] <= task_meta["stats"]["end_time"]


def test_workflow_options_as_a_decorator(wf: Any) -> None:
    @workflow.options(task_id="decorated", metadata={"via": "decorator"})
    @ray.remote
    def shout(text: str) -> str:
        return text.upper()

    assert wf.run(shout.bind("hi"), workflow_id="deco") == "HI"
    assert wf.get_metadata("deco", task_id="decorated")["user_metadata"] == {"via": "decorator"}


def test_invalid_workflow_options_fail_where_they_are_written() -> None:
    with pytest.raises(ValueError, match="invalid workflow option"):
        workflow.options(name="x")
    with pytest.raises(ValueError, match="JSON"):
        workflow.options(metadata={"k": object()})
    with pytest.raises(ValueError, match="task_id"):
        workflow.options(task_id="a/b")
    with pytest.raises(TypeError, match="Ray remote function"):
        workflow.options(task_id="x")(lambda: 1)


# -- cancellation -------------------------------------------------------------------------------
def test_cancel_stops_a_running_dag(wf: Any, tmp_path: Path) -> None:
    handle = wf.run_async(double.bind(wait_for_file.bind(str(tmp_path / "never"))), workflow_id="stop")
    deadline = time.monotonic() + 60
    while wf.get_status("stop") != wf.WorkflowStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    wf.cancel("stop")
    assert wf.get_status("stop") == wf.WorkflowStatus.CANCELED
    with pytest.raises(Exception, match="cancel"):
        ray.get(handle) if isinstance(handle, ray.ObjectRef) else handle.result()
    with pytest.raises(wf.WorkflowNotResumableError):
        wf.resume("stop")
    (tmp_path / "never").touch()  # let a step thread that outlived the cancel finish now


# -- Ray options --------------------------------------------------------------------------------
@ray.remote(runtime_env={"env_vars": {"DURABLY_TEST_FROM_RAY": "passed"}})
def read_env() -> str | None:
    return os.environ.get("DURABLY_TEST_FROM_RAY")


def test_ray_task_options_reach_the_ray_task(wf: Any, executor: str) -> None:
    # The local executor runs steps in this process, where Ray options have no effect.
    assert wf.run(read_env.bind()) == ("passed" if executor == "ray" else None)


def test_ray_options_become_step_options() -> None:
    tuned = counted.options(num_cpus=0.5, resources={"disk": 1}, max_retries=7, retry_exceptions=[KeyError])
    options = _ray_dag.to_workflow(tuned.bind("d", "n", 1), (), {}).step_options
    assert options.max_retries == 7
    assert options.retry_exceptions == (KeyError,)
    assert options.ray_options == {"num_cpus": 0.5, "resources": {"disk": 1}}


def test_a_remote_function_retries_at_once_as_ray_resubmitted_a_failed_task() -> None:
    retried = counted.options(max_retries=2, retry_exceptions=True)
    options = _ray_dag.to_workflow(retried.bind("d", "n", 1), (), {}).step_options
    assert [options.retry_wait(attempt) for attempt in (1, 2)] == [0.0, 0.0]


def test_workflow_options_retry_delay_gives_a_remote_function_backoff() -> None:
    backoff = workflow.options(retry_delay=0.5, max_retry_delay=1.0)
    retried = counted.options(max_retries=3, retry_exceptions=True, **backoff)
    options = _ray_dag.to_workflow(retried.bind("d", "n", 1), (), {}).step_options
    assert [options.retry_wait(attempt) for attempt in (1, 2, 3)] == [0.5, 1.0, 1.0]


def test_more_than_one_return_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_returns=2"):
        _ray_dag.to_workflow(double.options(num_returns=2).bind(1), (), {})


# -- what is not supported ----------------------------------------------------------------------
@ray.remote
class Counter:
    def value(self) -> int:
        return 1


def test_actor_nodes_are_a_clear_type_error(wf: Any) -> None:
    actor = Counter.bind()
    with pytest.raises(TypeError, match=r"ClassMethodNode.*virtual_actor"):
        wf.run(actor.value.bind())
    with pytest.raises(TypeError, match=r"ClassNode.*remote functions"):
        wf.run(double.bind(actor))


# -- scale and pickling -------------------------------------------------------------------------
def test_a_ten_thousand_node_chain_converts_without_recursion() -> None:
    node = double.bind(1)
    for _ in range(10_000):
        node = add.bind(node, 1)
    graph = flatten(_ray_dag.to_workflow(node, (), {}))
    assert len(graph) == 10_001
    assert len(graph.functions) == 2  # each remote function is pickled and stored once


def test_a_remote_function_is_pickled_once_for_every_dag() -> None:
    first = _ray_dag.to_workflow(double.bind(1), (), {}).function.pickled()
    second = _ray_dag.to_workflow(double.options(num_cpus=1).bind(2), (), {}).function.pickled()
    assert first is second
