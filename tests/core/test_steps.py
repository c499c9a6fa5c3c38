"""Step definitions and options: decoration, validation, retries, catching, checkpointing, Ray options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run

from durably import workflow

pytestmark = pytest.mark.workflow


@workflow.step
def one() -> int:
    return 1


@workflow.step(max_retries=5, catch_exceptions=False, name="adder", metadata={"team": "x"}, num_cpus=1)
def add(a: int, b: int) -> int:
    return a + b


def test_issue_example_runs_and_reports_success(wf: Any) -> None:
    output = add.step(100, one.step())
    assert output.run(workflow_id="run_1") == 101
    assert wf.get_status("run_1") == wf.WorkflowStatus.SUCCESSFUL
    assert wf.get_output("run_1") == 101


def test_bare_and_configured_decorators_make_step_functions() -> None:
    assert isinstance(one, workflow.StepFunction)
    assert isinstance(add, workflow.StepFunction)
    assert add.step_options.name == "adder"
    assert add.step_options.max_retries == 5
    assert add.step_options.ray_options == {"num_cpus": 1}


def test_options_of_a_step_future_rename_that_step(wf: Any) -> None:
    assert add.step(one.step(), 2).options(name="sum").run(workflow_id="renamed") == 3
    assert wf.get_output("renamed", name="sum") == 3


def test_calling_a_step_directly_says_to_use_step() -> None:
    with pytest.raises(TypeError, match=r"add.step|adder.step"):
        add(1, 2)


def test_options_returns_a_reconfigured_copy() -> None:
    changed = add.options(max_retries=0, name="other")
    assert changed.step_options.max_retries == 0
    assert changed.step_options.name == "other"
    assert add.step_options.max_retries == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": {"when": object()}}, "JSON-serialisable"),
        ({"metadata": "nope"}, "must be a dict"),
        ({"max_retries": -2}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"retry_exceptions": "ValueError"}, "retry_exceptions"),
        ({"catch_exceptions": "yes"}, "catch_exceptions"),
        ({"name": "a/b"}, "step name"),
        ({"no_such_option": 1}, "unknown step option 'no_such_option'"),
    ],
)
def test_bad_options_fail_at_decoration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        workflow.step(**options)(lambda: None)


@workflow.step
def total(values: Any) -> int:
    return sum(values["numbers"]) + sum(values["pair"])


def test_step_futures_nested_in_lists_dicts_and_tuples_are_resolved(wf: Any) -> None:
    nested = {"numbers": [one.step(), 2, one.step()], "pair": (one.step(), 10)}
    assert total.step(nested).run() == 15


def _flaky_body(counter_dir: str, failures: int, error: type[Exception]) -> str:
    record_run(counter_dir, "flaky")
    runs = len((Path(counter_dir) / "flaky").read_text().splitlines())
    if runs <= failures:
        raise error(f"attempt {runs} fails")
    return f"ok after {runs}"


@workflow.step(max_retries=3, retry_delay=0.01)
def flaky(counter_dir: str, failures: int, error: type[Exception] = ValueError) -> str:
    return _flaky_body(counter_dir, failures, error)


@pytest.mark.storage_on_ray
def test_failing_step_is_retried_until_it_succeeds(wf: Any, counter_dir: Path) -> None:
    assert flaky.step(str(counter_dir), 3).run() == "ok after 4"
    assert count_runs(counter_dir, "flaky") == 4


def test_step_fails_once_retries_are_used_up(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(workflow.WorkflowExecutionError, match="attempt 4 fails"):
        flaky.step(str(counter_dir), 10).run(workflow_id="exhausted")
    assert count_runs(counter_dir, "flaky") == 4
    assert wf.get_status("exhausted") == wf.WorkflowStatus.FAILED


def test_max_retries_zero_runs_once(wf: Any, counter_dir: Path) -> None:
    with pytest.raises(workflow.WorkflowExecutionError):
        flaky.options(max_retries=0).step(str(counter_dir), 1).run()
    assert count_runs(counter_dir, "flaky") == 1


def test_max_retries_minus_one_retries_without_limit(wf: Any, counter_dir: Path) -> None:
    assert flaky.options(max_retries=-1, retry_delay=0).step(str(counter_dir), 12).run() == "ok after 13"


def test_only_listed_exception_types_are_retried(wf: Any, counter_dir: Path) -> None:
    only_key_errors = flaky.options(retry_exceptions=[KeyError])
    with pytest.raises(workflow.WorkflowExecutionError, match="ValueError"):
        only_key_errors.step(str(counter_dir), 2, ValueError).run()
    assert count_runs(counter_dir, "flaky") == 1


def test_retry_backoff_grows_exponentially_up_to_the_cap() -> None:
    options = workflow.step(retry_delay=0.5, max_retry_delay=3.0)(lambda: None).step_options
    assert [options.retry_wait(attempt) for attempt in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@workflow.step(catch_exceptions=True, max_retries=0)
def may_fail(fail: bool) -> str:
    if fail:
        raise KeyError("missing thing")
    return "fine"


def test_catch_exceptions_returns_result_and_none(wf: Any) -> None:
    assert may_fail.step(False).run() == ("fine", None)


def test_catch_exceptions_returns_none_and_the_error(wf: Any) -> None:
    result, error = may_fail.step(True).run()
    assert result is None
    assert isinstance(error, KeyError)
    assert "missing thing" in str(error)


@workflow.step(checkpoint=False)
def not_checkpointed(counter_dir: str) -> int:
    record_run(counter_dir, "volatile")
    return 5


@workflow.step
def fail_until_file(counter_dir: str, value: int) -> int:
    record_run(counter_dir, "consumer")
    if not (Path(counter_dir) / "go").exists():
        raise RuntimeError("not yet")
    return value * 2


def test_checkpoint_false_output_is_recomputed_on_resume(wf: Any, counter_dir: Path) -> None:
    flow = fail_until_file.options(max_retries=0).step(
        str(counter_dir), not_checkpointed.step(str(counter_dir))
    )
    with pytest.raises(workflow.WorkflowExecutionError):
        flow.run(workflow_id="volatile")
    (counter_dir / "go").touch()
    assert wf.resume("volatile") == 10
    assert count_runs(counter_dir, "volatile") == 2
    assert count_runs(counter_dir, "consumer") == 2


@workflow.step(resources={"durably_test": 1}, num_cpus=0)
def assigned_resources() -> dict[str, float]:
    import ray

    return dict(ray.get_runtime_context().get_assigned_resources())


def test_ray_options_reach_the_ray_task(ray_cluster: Any, storage_url: str) -> None:
    workflow.init(storage=storage_url, executor="ray")
    assert assigned_resources.step().run().get("durably_test") == 1
