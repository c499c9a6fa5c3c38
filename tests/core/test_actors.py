"""Virtual actors: durable state, exactly-once calls, ordering, crashes, management and bad input."""

from __future__ import annotations

import concurrent.futures
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import count_runs, record_run, run_child

from durably import workflow
from durably._resolve import open_storage
from durably.actors._store import COMPACT_EVERY, KEEP

pytestmark = pytest.mark.workflow

WAIT = 120.0


@workflow.virtual_actor
class Counter:
    def __init__(self, start: int = 0, counts: str = "") -> None:
        self.count = start
        self.counts = counts
        if counts:
            record_run(counts, "init")

    def incr(self, by: int = 1) -> int:
        self.count += by
        return self.count

    def fail_after_change(self) -> None:
        self.count += 1000
        raise ValueError("no more")

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.count

    @workflow.virtual_actor.readonly
    def sneaky(self) -> int:
        self.count = -1
        return self.count


@workflow.virtual_actor
class Log:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def append(self, item: Any) -> list[Any]:
        self.items.append(item)
        return list(self.items)

    def append_after_gate(self, item: Any, folder: str) -> list[Any]:
        Path(folder, "started").touch()
        deadline = time.monotonic() + WAIT
        while not Path(folder, "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.items.append(item)
        return list(self.items)

    @workflow.virtual_actor.readonly
    def read(self) -> list[Any]:
        return list(self.items)


@workflow.virtual_actor
class Account:
    """Keeps its state in a custom shape through __getstate__/__setstate__."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0
        self.cache = object()  # not picklable as state: must not be stored

    def __getstate__(self) -> dict[str, Any]:
        return {"who": self.owner, "cents": self.balance}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.owner = state["who"]
        self.balance = state["cents"]
        self.cache = object()

    def deposit(self, cents: int) -> int:
        self.balance += cents
        return self.balance


@workflow.step
def double(value: int) -> int:
    return value * 2


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step
def counted(counter_dir: str, name: str, value: int) -> int:
    record_run(counter_dir, name)
    return value


@workflow.virtual_actor
class Planner:
    def __init__(self) -> None:
        self.total = 0
        self.calls = 0

    def plan(self, value: int) -> Any:
        self.calls += 1
        return add.step(double.step(value), 1)

    def plan_and_record(self, value: int) -> Any:
        self.calls += 1
        return self.record.step(double.step(value))

    def record(self, amount: int) -> int:
        self.total += amount
        return self.total

    def bad_plan(self) -> Any:
        return add.step(self.record.step(1), 1)

    def poke_other(self, other_id: str) -> int:
        return int(workflow.get_actor(other_id).incr.run(5))

    def call_self(self) -> Any:
        return workflow.get_actor("planner").record.run(1)


def _result(handle: Any) -> Any:
    if isinstance(handle, concurrent.futures.Future):
        return handle.result(timeout=WAIT)
    import ray

    return ray.get(handle, timeout=WAIT)


def _actor_keys(storage_url: str, actor_id: str) -> list[str]:
    return list(open_storage(storage_url).list(f"actors/{actor_id}"))


# -- basics --------------------------------------------------------------------------------------
@pytest.mark.storage_on_ray
def test_counter_from_the_issue_keeps_its_state_between_calls(wf: Any) -> None:
    counter = Counter.get_or_create("counter_1", 10)
    assert counter.incr.run() == 11
    assert counter.incr.run(2) == 13
    assert wf.get_actor("counter_1").value.run() == 13


def test_get_or_create_of_an_existing_actor_does_not_run_the_constructor_again(
    wf: Any, counter_dir: Path
) -> None:
    Counter.get_or_create("c", 1, str(counter_dir)).incr.run()
    again = Counter.get_or_create("c", 100, str(counter_dir))
    assert again.value.run() == 2
    assert count_runs(counter_dir, "init") == 1


def test_get_or_create_with_another_class_is_refused(wf: Any) -> None:
    Counter.get_or_create("c")
    with pytest.raises(ValueError, match="is a Counter, not a Log"):
        Log.get_or_create("c")


def test_run_async_gives_an_object_ref_or_a_future_of_the_result(wf: Any, executor: str) -> None:
    import ray

    handle = Counter.get_or_create("c", 5).incr.run_async(3)
    expected = ray.ObjectRef if executor == "ray" else concurrent.futures.Future
    assert isinstance(handle, expected)
    assert _result(handle) == 8


def test_method_step_is_usable_as_an_argument_of_other_steps(wf: Any) -> None:
    counter = Counter.get_or_create("c", 1)
    flow = add.step(counter.incr.step(4), double.step(counter.incr.step(10)))
    result = flow.run(workflow_id="uses-actor")
    assert result in (5 + 2 * 15, 15 + 2 * 11)  # the two calls may be applied in either order
    assert counter.value.run() == 15


def test_method_step_options_apply_as_for_steps(wf: Any) -> None:
    counter = Counter.get_or_create("c", 0)
    flow = add.step(counter.incr.options(name="bump").step(1), 10)
    assert flow.run(workflow_id="named") == 11
    assert wf.get_output("named", name="bump") == 1


def test_state_is_kept_through_the_class_getstate_and_setstate(wf: Any, storage_url: str) -> None:
    account = Account.get_or_create("acct", "ann")
    account.deposit.run(250)
    assert account.deposit.run(50) == 300
    assert Account.cls.__name__ == "Account"
    stored = [key for key in _actor_keys(storage_url, "acct") if "/log/" in key]
    assert len(stored) == 3


@workflow.virtual_actor
class RefusesNegative:
    def __init__(self, start: int) -> None:
        if start < 0:
            raise ValueError("start must be >= 0")
        self.count = start

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.count


def test_get_or_create_raises_the_constructors_error_and_a_later_one_can_create_the_actor(wf: Any) -> None:
    with pytest.raises(wf.ActorMethodError) as raised:
        RefusesNegative.get_or_create("refuses", -1)
    assert isinstance(raised.value.__cause__, ValueError)
    assert RefusesNegative.get_or_create("refuses", 5).value.run() == 5


def test_a_failing_call_leaves_the_state_as_it_was_and_names_the_actor_and_method(wf: Any) -> None:
    counter = Counter.get_or_create("c", 7)
    with pytest.raises(wf.ActorMethodError) as raised:
        counter.fail_after_change.run()
    assert "'fail_after_change'" in str(raised.value) and "'c'" in str(raised.value)
    assert isinstance(raised.value.__cause__, ValueError)
    assert isinstance(raised.value, wf.WorkflowExecutionError)
    assert counter.value.run() == 7


# -- ordering and concurrency --------------------------------------------------------------------
def test_calls_are_applied_one_at_a_time_in_submission_order(wf: Any) -> None:
    log = Log.get_or_create("log")
    handles = [log.append.run_async(index) for index in range(20)]
    results = [_result(handle) for handle in handles]
    assert results[-1] == list(range(20))
    assert [len(result) for result in results] == list(range(1, 21))


def test_a_read_only_call_does_not_wait_for_a_running_writer(wf: Any, tmp_path: Path) -> None:
    log = Log.get_or_create("log")
    log.append.run("first")
    writer = log.append_after_gate.run_async("second", str(tmp_path))
    deadline = time.monotonic() + WAIT
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, "the writer never started"
        time.sleep(0.02)
    try:
        assert log.read.run() == ["first"]
    finally:
        (tmp_path / "gate").touch()
    assert _result(writer) == ["first", "second"]
    assert log.read.run() == ["first", "second"]


CHILD_PREAMBLE = """
import sys
import cloudpickle, durably_test_helpers
from durably import workflow
from durably_test_helpers import record_run
cloudpickle.register_pickle_by_value(durably_test_helpers)
workflow.init(storage={storage!r}, executor={executor!r})

@workflow.virtual_actor
class Counter:
    def __init__(self, start=0, counts=""):
        self.count = start
        if counts:
            record_run(counts, "init")

    def incr(self, by=1):
        self.count += by
        return self.count
"""


def _child_env(executor: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if executor != "ray":
        return {}
    cluster = request.getfixturevalue("ray_cluster")
    return {**cluster.auth_env(), "RAY_ADDRESS": cluster.address}


def _run_children(scripts: list[str], env: dict[str, str]) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(len(scripts)) as pool:
        return list(pool.map(lambda script: run_child(script, env=env), scripts))


@pytest.mark.needs_persistent_storage
def test_two_processes_incrementing_at_once_lose_no_update(
    storage_url: str, executor: str, request: pytest.FixtureRequest
) -> None:
    workflow.init(storage=storage_url, executor=executor)
    Counter.get_or_create("shared", 0)
    script = (
        CHILD_PREAMBLE.format(storage=storage_url, executor=executor)
        + """
counter = workflow.get_actor("shared")
for _ in range(200):
    counter.incr.run()
print("done")
"""
    )
    children = _run_children([script, script], _child_env(executor, request))
    for child in children:
        assert child.returncode == 0, child.stderr[-3000:]
    assert workflow.get_actor("shared").value.run() == 400


@pytest.mark.needs_persistent_storage
def test_two_processes_creating_the_same_actor_at_once_construct_it_once(
    storage_url: str, executor: str, counter_dir: Path, request: pytest.FixtureRequest
) -> None:
    script = (
        CHILD_PREAMBLE.format(storage=storage_url, executor=executor)
        + f"""
print(Counter.get_or_create("born-once", 0, {str(counter_dir)!r}).incr.run())
"""
    )
    children = _run_children([script, script], _child_env(executor, request))
    for child in children:
        assert child.returncode == 0, child.stderr[-3000:]
    assert sorted(int(child.stdout.split()[-1]) for child in children) == [1, 2]
    assert count_runs(counter_dir, "init") == 1


@pytest.mark.needs_persistent_storage
def test_get_actor_works_in_a_process_that_never_imported_the_class(
    storage_url: str, executor: str, request: pytest.FixtureRequest
) -> None:
    workflow.init(storage=storage_url, executor=executor)
    Account.get_or_create("acct", "bob").deposit.run(10)
    script = f"""
from durably import workflow
workflow.init(storage={storage_url!r}, executor={executor!r})
account = workflow.get_actor("acct")
print(account.deposit.run(5), account.class_name)
"""
    child = run_child(script, env=_child_env(executor, request))
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split()[-2:] == ["15", "Account"]


# -- exactly once -------------------------------------------------------------------------------
def test_a_retried_call_id_returns_the_committed_result_without_applying_it_again(wf: Any) -> None:
    counter = Counter.get_or_create("c", 0)
    assert counter.incr.options(call_id="payment-1").run(5) == 5
    counter.incr.run(1)
    assert counter.incr.options(call_id="payment-1").run(5) == 5
    assert counter.value.run() == 6


# -- methods that return steps ----------------------------------------------------------------
def test_a_method_returning_a_workflow_returns_its_result_and_keeps_its_state_change(wf: Any) -> None:
    planner = Planner.get_or_create("planner")
    assert planner.plan.run(20) == 41
    assert planner.plan.run(1) == 3
    assert wf.get_actor("planner").record.run(0) == 0
    assert wf.list_all() == []  # finished sub-workflows are removed once their call commits


def test_a_method_returning_its_own_method_step_applies_it_on_the_same_call(
    wf: Any, storage_url: str
) -> None:
    planner = Planner.get_or_create("planner")
    assert planner.plan_and_record.run(21) == 42
    assert planner.plan_and_record.run(1) == 44
    commits = [key for key in _actor_keys(storage_url, "planner") if "/log/" in key]
    assert len(commits) == 3  # the constructor and two calls: each tail call is part of its call


def test_a_workflow_step_that_calls_its_own_actor_is_refused(wf: Any) -> None:
    planner = Planner.get_or_create("planner")
    with pytest.raises(wf.ActorMethodError, match="calls 'planner' itself"):
        planner.bad_plan.run()


def test_one_actor_calls_another_from_inside_a_method(wf: Any) -> None:
    Counter.get_or_create("other", 1)
    planner = Planner.get_or_create("planner")
    assert planner.poke_other.run("other") == 6
    assert wf.get_actor("other").value.run() == 6


def test_a_method_calling_its_own_actor_with_run_is_refused_instead_of_deadlocking(wf: Any) -> None:
    planner = Planner.get_or_create("planner")
    with pytest.raises(wf.ActorMethodError, match="would wait for itself"):
        planner.call_self.run()


# -- management ----------------------------------------------------------------------------------
def test_actors_are_listed_by_list_actors_and_not_by_list_all(wf: Any) -> None:
    Counter.get_or_create("b-counter")
    Log.get_or_create("a-log")
    add.step(1, 2).run(workflow_id="plain")
    assert wf.list_actors() == [("a-log", "Log"), ("b-counter", "Counter")]
    assert [workflow_id for workflow_id, _ in wf.list_all()] == ["plain"]


def test_delete_removes_an_actor_and_its_whole_history(wf: Any, storage_url: str) -> None:
    Counter.get_or_create("gone", 3).incr.run()
    wf.delete("gone")
    assert wf.list_actors() == []
    assert _actor_keys(storage_url, "gone") == []
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_actor("gone")
    assert Counter.get_or_create("gone", 100).incr.run() == 101


def test_delete_actor_of_an_unknown_id_raises_not_found(wf: Any) -> None:
    with pytest.raises(wf.WorkflowNotFoundError, match="no virtual actor with id 'nobody'"):
        wf.delete_actor("nobody")


def test_history_is_compacted_so_stored_objects_stay_bounded(wf: Any, storage_url: str) -> None:
    counter = Counter.get_or_create("busy")
    for _ in range(500):
        counter.incr.run()
    assert counter.value.run() == 500
    keys = _actor_keys(storage_url, "busy")
    log_records = [key for key in keys if "/log/" in key]
    # The Ray host compacts behind its calls, so the last compaction may still be running.
    assert len(log_records) <= KEEP + 2 * COMPACT_EVERY
    assert len(keys) <= KEEP + 2 * COMPACT_EVERY + 3  # + the class and the constructor's lease


# -- bad input -----------------------------------------------------------------------------------
def test_calling_a_method_that_does_not_exist_names_the_actor_class(wf: Any) -> None:
    counter = Counter.get_or_create("c")
    with pytest.raises(AttributeError, match=r"virtual actor class 'Counter'.*'decr'"):
        counter.decr.run()


def test_get_actor_of_an_unknown_id_raises_not_found(wf: Any) -> None:
    with pytest.raises(wf.WorkflowNotFoundError, match="no virtual actor with id 'ghost'"):
        wf.get_actor("ghost")


def test_a_read_only_method_that_changes_the_state_warns_and_changes_nothing(wf: Any) -> None:
    counter = Counter.get_or_create("c", 4)
    with pytest.warns(RuntimeWarning, match="read-only method 'sneaky'"):
        assert counter.sneaky.run() == -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert counter.value.run() == 4


def test_a_virtual_actor_class_cannot_be_instantiated_directly() -> None:
    with pytest.raises(TypeError, match=r"Counter.get_or_create"):
        Counter(1)


@pytest.mark.parametrize("defined", ["__getstate__", "__setstate__"])
def test_a_class_with_only_one_of_getstate_and_setstate_is_refused(defined: str) -> None:
    methods = {"__init__": lambda self: None, defined: lambda self, *state: None}
    with pytest.raises(ValueError, match=f"defines {defined} but not"):
        workflow.virtual_actor(type("HalfState", (), methods))


# -- crashes -------------------------------------------------------------------------------------
CRASH_CHILD = (
    CHILD_PREAMBLE
    + """
import os, signal
from pathlib import Path
from durably.actors._store import ActorStore

counts = {counts!r}

@workflow.virtual_actor
class Crashy:
    def __init__(self):
        self.count = 0

    def incr(self):
        record_run(counts, "body")
        self.count += 1
        if {kill_in_body} and not Path(counts, "killed").exists():
            Path(counts, "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.count

    @workflow.virtual_actor.readonly
    def value(self):
        return self.count

if {kill_after_commit}:
    committing = ActorStore.append
    def append_then_die(self, record):
        created = committing(self, record)
        if created and record.method == "incr":
            os.kill(os.getpid(), signal.SIGKILL)
        return created
    ActorStore.append = append_then_die

crashy = Crashy.get_or_create("crashy")
print("result", crashy.incr.options(call_id="call-1").run())
"""
)


def _crash_child(
    storage_url: str, executor: str, counter_dir: Path, env: dict[str, str], **kill: bool
) -> Any:
    flags = {"kill_in_body": False, "kill_after_commit": False, **kill}
    script = CRASH_CHILD.format(storage=storage_url, executor=executor, counts=str(counter_dir), **flags)
    return run_child(script, env=env)


@pytest.mark.needs_persistent_storage
def test_driver_killed_after_the_method_ran_but_before_the_commit_leaves_the_state_unchanged(
    storage_url: str, counter_dir: Path
) -> None:
    child = _crash_child(storage_url, "local", counter_dir, {}, kill_in_body=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    fresh = run_child(
        f"from durably import workflow\nworkflow.init(storage={storage_url!r}, executor='local')\n"
        "print(workflow.get_actor('crashy').value.run())"
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.split()[-1] == "0"
    assert count_runs(counter_dir, "body") == 1


@pytest.mark.needs_persistent_storage
def test_host_killed_in_the_middle_of_a_call_still_applies_the_call_once(
    ray_cluster: Any, storage_url: str, counter_dir: Path
) -> None:
    env = {**ray_cluster.auth_env(), "RAY_ADDRESS": ray_cluster.address}
    child = _crash_child(storage_url, "ray", counter_dir, env, kill_in_body=True)
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split()[-1] == "1"
    assert count_runs(counter_dir, "body") == 2  # the killed attempt and the one that committed
    workflow.init(storage=storage_url, executor="ray")
    assert workflow.get_actor("crashy").value.run() == 1


@pytest.mark.needs_persistent_storage
def test_a_call_committed_just_before_a_crash_is_not_applied_again_when_retried(
    storage_url: str, executor: str, counter_dir: Path, request: pytest.FixtureRequest
) -> None:
    child = _crash_child(storage_url, "local", counter_dir, {}, kill_after_commit=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    workflow.init(storage=storage_url, executor=executor)
    crashy = workflow.get_actor("crashy")
    assert crashy.incr.options(call_id="call-1").run() == 1
    assert count_runs(counter_dir, "body") == 1
    assert crashy.incr.run() == 2


SUBWORKFLOW_CRASH_CHILD = (
    CHILD_PREAMBLE
    + """
import os, signal
from pathlib import Path

counts = {counts!r}
driver = os.getpid()

@workflow.step
def first(value):
    record_run(counts, "first")
    return value + 1

@workflow.step
def second(value):
    record_run(counts, "second")
    if not Path(counts, "killed").exists():
        Path(counts, "killed").touch()
        os.kill(driver, signal.SIGKILL)
    return value * 10

@workflow.virtual_actor
class Jobs:
    def __init__(self):
        self.done = []

    def process(self, value):
        self.done.append(value)
        return second.step(first.step(value))

    @workflow.virtual_actor.readonly
    def finished(self):
        return self.done

jobs = Jobs.get_or_create("jobs")
if sys.argv[-1] == "crash":
    print(jobs.process.options(call_id="job-1").run(4))
else:
    print("before", jobs.finished.run())
    print("result", jobs.process.options(call_id="job-1").run(4))
    print("after", jobs.finished.run())
"""
)


@pytest.mark.needs_persistent_storage
def test_driver_killed_inside_a_calls_sub_workflow_resumes_it_and_commits_once(
    storage_url: str, counter_dir: Path
) -> None:
    script = SUBWORKFLOW_CRASH_CHILD.format(storage=storage_url, executor="local", counts=str(counter_dir))
    crashed = run_child(script.replace('sys.argv[-1] == "crash"', "True"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    retried = run_child(script.replace('sys.argv[-1] == "crash"', "False"))
    assert retried.returncode == 0, retried.stderr[-3000:]
    lines = retried.stdout.splitlines()[-3:]
    assert lines == ["before []", "result 50", "after [4]"]
    assert count_runs(counter_dir, "first") == 1  # resumed: the finished step did not run again
    assert count_runs(counter_dir, "second") == 2
