"""``StorageWorkflowContract``: workflows, failures, crashes, deletion and virtual actors on a storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from durably import workflow
from durably._resolve import open_storage

#: How many steps the chain workflow has, and which one stops its driver in the crash checks.
CHAIN_LENGTH = 6
STOP_AT = 3
#: What the chain workflow returns: every link adds its index plus one.
CHAIN_OUTPUT = sum(index + 1 for index in range(CHAIN_LENGTH))


class ContractStepError(Exception):
    """The failure a contract step raises on purpose."""


# -- side effects, counted in files so that every process sees them ------------------------------------
def record_run(counts: str, name: str) -> None:
    """Record that the step called ``name`` ran once more (one line in the file ``counts/name``)."""
    with open(Path(counts, name), "a") as handle:
        handle.write("ran\n")


def count_runs(counts: str | Path, name: str) -> int:
    """How many times the step called ``name`` has run, in any process."""
    path = Path(counts, name)
    return len(path.read_text().splitlines()) if path.exists() else 0


# -- the workflows the contract runs (importable, so a child process can run them too) -----------------
_interrupted_steps: dict[str, threading.Event] = {}
_interrupted_lock = threading.Lock()


@workflow.step
def link(counts: str, index: int, total: int) -> int:
    """One link of the chain: counts its run and adds ``index + 1``."""
    record_run(counts, f"link{index}")
    return total + index + 1


@workflow.step(max_retries=0)
def fails_until_fixed(counts: str, index: int, total: int, fix: str) -> int:
    """A link that fails for good until the file ``fix`` exists."""
    record_run(counts, f"link{index}")
    if not Path(fix).exists():
        raise ContractStepError(f"link {index} fails until {fix} exists")
    return total + index + 1


@workflow.step(max_retries=0)
def stops_the_driver_once(counts: str, index: int, total: int, how: str) -> int:
    """A link whose first run stops the process driving the workflow, before it can finish.

    ``how="kill"`` sends SIGKILL to this process (the driver, with the local executor): nothing
    after that point runs. ``how="interrupt"`` sends SIGINT (Ctrl-C) to this process, whose main
    thread drives the workflow, then parks until :func:`release_interrupted_steps`; its result is
    never checkpointed, as if it had died with the driver.
    """
    record_run(counts, f"link{index}")
    marker = Path(counts, f"link{index}.stopped")
    if not marker.exists():
        marker.touch()
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGINT)
        park_until_released(counts)
        raise ContractStepError(f"link {index} died with its driver")
    return total + index + 1


def park_until_released(counts: str) -> None:
    """Block until :func:`release_interrupted_steps` is called for ``counts`` in this process."""
    # Steps reach this module's state through this function: a step function itself is pickled
    # by value, with copies of the globals it names.
    with _interrupted_lock:
        parked = _interrupted_steps.setdefault(counts, threading.Event())
    parked.wait()


def release_interrupted_steps(counts: str) -> None:
    """Let the steps parked by an ``interrupt`` stop (see :func:`stops_the_driver_once`) end."""
    with _interrupted_lock:
        parked = _interrupted_steps.setdefault(counts, threading.Event())
    parked.set()


def chain(
    counts: str, *, fail_at: int | None = None, fix: str = "", stop_at: int | None = None, how: str = ""
) -> Any:
    """A chain of :data:`CHAIN_LENGTH` steps; one may fail until fixed, or stop its driver once."""
    flow: Any = 0
    for index in range(CHAIN_LENGTH):
        if index == fail_at:
            flow = fails_until_fixed.step(counts, index, flow, fix)
        elif index == stop_at:
            flow = stops_the_driver_once.step(counts, index, flow, how)
        else:
            flow = link.step(counts, index, flow)
    return flow


@workflow.step(name="first", metadata={"role": "first"})
def first(word: str) -> str:
    """The named first step of the small workflow."""
    return word.upper()


@workflow.step
def shout(word: str) -> str:
    """The last step of the small workflow."""
    return word + "!"


def describe_workflow(workflow_id: str) -> dict[str, Any]:
    """Output, status and metadata of a finished workflow, as the current driver reads them."""
    return {
        "output": workflow.get_output(workflow_id),
        "status": workflow.get_status(workflow_id).value,
        "user_metadata": workflow.get_metadata(workflow_id)["user_metadata"],
        "first_step_metadata": workflow.get_metadata(workflow_id, name="first")["user_metadata"],
        "listed": [[listed_id, status.value] for listed_id, status in workflow.list_all()],
    }


class Counter:
    """The state and methods of :data:`ContractCounter`: one number."""

    def __init__(self, start: int) -> None:
        self.total = start

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.total


#: A virtual actor class (assigned, not decorated, so that type checkers see what it is).
ContractCounter = workflow.virtual_actor(Counter)


# -- what the contract runs in a child process ----------------------------------------------------------
_CHILD_PREAMBLE = """
import json, sys
from durably import workflow
from durably.testing import workflows as kit
workflow.init(storage=sys.argv[1], executor="local")
"""

_RUN_CHAIN_STOPPED_BY_A_KILL = """
print(kit.chain(sys.argv[2], stop_at=kit.STOP_AT, how="kill").run(workflow_id=sys.argv[3]))
"""

_DESCRIBE = """
print(json.dumps(kit.describe_workflow(sys.argv[2])))
"""

_ADD_TO_ACTOR = """
print(json.dumps(workflow.get_actor(sys.argv[2]).add.run(int(sys.argv[3]))))
"""


class StorageWorkflowContract:
    """Workflows on a storage backend, end to end with the local executor, as inheritable tests.

    Where :class:`~durably.testing.StorageContract` checks the Storage protocol method by method,
    this kit checks what users rely on: a workflow's output, status and metadata are stored; a
    failed workflow resumes re-running only its unfinished steps; a driver killed with SIGKILL in
    the middle of a step is resumed by another process without re-running finished steps;
    ``workflow.delete`` leaves no key behind; a virtual actor keeps its state across processes.
    Side effects are counted with files in ``tmp_path``.

    Subclass it in a test module under a name pytest collects (``TestMyStorageWorkflows``) and
    define one fixture, ``storage_url``, that returns the URL of a fresh, empty storage of your
    backend for each test::

        from durably.testing import StorageWorkflowContract

        class TestMyStorageWorkflows(StorageWorkflowContract):
            @pytest.fixture
            def storage_url(self, tmp_path):
                return f"my://{tmp_path}/store"

    The kit starts child processes with this interpreter (``sys.executable``) and the environment
    of :meth:`child_environment`: your backend must be installed (found through its ``durably``
    entry point) and reachable from there, with its credentials in that environment.

    A backend whose data lives only as long as the process (``memory://`` without Ray) sets
    :attr:`survives_process_exit` to False: the checks that involve another process then run
    their in-process equivalents instead (the driver stopped by SIGINT rather than killed, and
    a new ``workflow.init`` rather than a new process).
    """

    #: Whether the storage's data outlives the process that wrote it.
    survives_process_exit: bool = True
    #: Seconds a child process may run before the test fails (a guard against hangs only).
    child_timeout: float = 300.0

    # ----------------------------------------------------------------- hooks

    def child_environment(self) -> dict[str, str]:
        """The environment of the child processes (default: this process's)."""
        return dict(os.environ)

    def run_child(self, body: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``body`` in a new interpreter, after ``workflow.init(storage=args[0], executor="local")``."""
        return subprocess.run(
            [sys.executable, "-c", _CHILD_PREAMBLE + body, *args],
            env=self.child_environment(),
            capture_output=True,
            text=True,
            timeout=self.child_timeout,
            check=False,
        )

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def init(storage_url: str) -> None:
        """Point the workflow API of this process at the storage, with the local executor."""
        workflow.init(storage=storage_url, executor="local")

    @pytest.fixture
    def counts(self, tmp_path: Path) -> Iterator[str]:
        """A folder where the contract's steps record each run; parked steps are released at the end."""
        folder = tmp_path / "counts"
        folder.mkdir()
        try:
            yield str(folder)
        finally:
            release_interrupted_steps(str(folder))

    def read_back(self, storage_url: str, workflow_id: str) -> dict[str, Any]:
        """What a new driver reads about the workflow: in a new process if the storage outlives it."""
        if not self.survives_process_exit:
            self.init(storage_url)
            return describe_workflow(workflow_id)
        child = self.run_child(_DESCRIBE, storage_url, workflow_id)
        assert child.returncode == 0, child.stderr[-3000:]
        return json.loads(child.stdout.splitlines()[-1])  # type: ignore[no-any-return]

    def stop_driver_mid_run(self, storage_url: str, counts: str, workflow_id: str) -> None:
        """Run the chain until its driver stops abruptly inside the link :data:`STOP_AT`."""
        if self.survives_process_exit:
            child = self.run_child(_RUN_CHAIN_STOPPED_BY_A_KILL, storage_url, counts, workflow_id)
            assert child.returncode == -signal.SIGKILL, (
                f"the child should have been killed in link {STOP_AT}; it exited with {child.returncode}:\n"
                f"{child.stderr[-3000:]}"
            )
            return
        assert threading.current_thread() is threading.main_thread(), "SIGINT reaches the main thread only"
        self.init(storage_url)
        with _default_sigint_handler(), pytest.raises(BaseException) as stopped:
            chain(counts, stop_at=STOP_AT, how="interrupt").run(workflow_id=workflow_id)
        release_interrupted_steps(counts)
        cause = stopped.value if isinstance(stopped.value, KeyboardInterrupt) else stopped.value.__cause__
        assert isinstance(cause, KeyboardInterrupt), (
            f"the run ended with {stopped.value!r}, not by the interrupt"
        )

    def add_in_a_new_driver(self, storage_url: str, actor_id: str, amount: int) -> int:
        """Call ``add(amount)`` on the actor from a new driver: a new process if the storage outlives it."""
        if not self.survives_process_exit:
            self.init(storage_url)
            return int(workflow.get_actor(actor_id).add.run(amount))
        child = self.run_child(_ADD_TO_ACTOR, storage_url, actor_id, str(amount))
        assert child.returncode == 0, child.stderr[-3000:]
        return int(json.loads(child.stdout.splitlines()[-1]))

    # ----------------------------------------------------------------- a workflow runs and is stored

    def test_workflow_output_status_and_metadata_are_stored(self, storage_url: str) -> None:
        self.init(storage_url)
        flow = shout.step(first.step("stored"))
        assert flow.run(workflow_id="small", metadata={"owner": "contract"}) == "STORED!"
        assert self.read_back(storage_url, "small") == {
            "output": "STORED!",
            "status": "SUCCESSFUL",
            "user_metadata": {"owner": "contract"},
            "first_step_metadata": {"role": "first"},
            "listed": [["small", "SUCCESSFUL"]],
        }

    def test_workflow_writes_its_checkpoints_to_the_storage(self, storage_url: str, counts: str) -> None:
        self.init(storage_url)
        storage = open_storage(storage_url)
        assert list(storage.list("")) == [], "the storage_url fixture must give an empty storage"
        assert chain(counts).run(workflow_id="checkpointed") == CHAIN_OUTPUT
        assert any("checkpointed" in key for key in storage.list(""))

    # ----------------------------------------------------------------- failure and resume

    def test_failed_workflow_resumes_running_only_its_unfinished_steps(
        self, storage_url: str, counts: str, tmp_path: Path
    ) -> None:
        self.init(storage_url)
        fix = str(tmp_path / "fixed")
        with pytest.raises(workflow.WorkflowExecutionError):
            chain(counts, fail_at=2, fix=fix).run(workflow_id="flaky")
        assert workflow.get_status("flaky") == workflow.WorkflowStatus.FAILED
        Path(fix).touch()
        assert workflow.resume("flaky") == CHAIN_OUTPUT
        assert workflow.get_status("flaky") == workflow.WorkflowStatus.SUCCESSFUL
        assert [count_runs(counts, f"link{index}") for index in range(CHAIN_LENGTH)] == [1, 1, 2, 1, 1, 1]

    # ----------------------------------------------------------------- a crash, then resume

    def test_driver_stopped_mid_step_is_resumed_without_rerunning_finished_steps(
        self, storage_url: str, counts: str
    ) -> None:
        self.stop_driver_mid_run(storage_url, counts, "crashed")
        self.init(storage_url)
        expected = {workflow.WorkflowStatus.RESUMABLE}
        if not self.survives_process_exit:
            expected.add(workflow.WorkflowStatus.FAILED)  # the interrupted driver could record its end
        assert workflow.get_status("crashed") in expected
        assert workflow.resume("crashed") == CHAIN_OUTPUT
        runs = [count_runs(counts, f"link{index}") for index in range(CHAIN_LENGTH)]
        assert runs == [2 if index == STOP_AT else 1 for index in range(CHAIN_LENGTH)]
        assert workflow.get_output("crashed") == CHAIN_OUTPUT

    # ----------------------------------------------------------------- delete

    def test_delete_of_a_finished_workflow_removes_every_key_it_wrote(
        self, storage_url: str, counts: str
    ) -> None:
        self.init(storage_url)
        storage = open_storage(storage_url)
        assert chain(counts).run(workflow_id="kept") == CHAIN_OUTPUT
        before = list(storage.list(""))
        assert chain(counts).run(workflow_id="doomed") == CHAIN_OUTPUT
        workflow.delete("doomed")
        assert list(storage.list("")) == before
        with pytest.raises(workflow.WorkflowNotFoundError):
            workflow.get_status("doomed")
        assert workflow.get_output("kept") == CHAIN_OUTPUT

    def test_delete_of_a_failed_workflow_removes_every_key_it_wrote(
        self, storage_url: str, counts: str, tmp_path: Path
    ) -> None:
        self.init(storage_url)
        storage = open_storage(storage_url)
        assert chain(counts).run(workflow_id="kept") == CHAIN_OUTPUT
        before = list(storage.list(""))
        with pytest.raises(workflow.WorkflowExecutionError):
            chain(counts, fail_at=4, fix=str(tmp_path / "never")).run(workflow_id="doomed")
        workflow.delete("doomed")
        assert list(storage.list("")) == before
        assert [workflow_id for workflow_id, _ in workflow.list_all()] == ["kept"]

    # ----------------------------------------------------------------- virtual actors

    def test_virtual_actor_state_survives_into_a_new_driver(self, storage_url: str) -> None:
        self.init(storage_url)
        counter = ContractCounter.get_or_create("contract-counter", 10)
        assert counter.add.run(5) == 15
        assert self.add_in_a_new_driver(storage_url, "contract-counter", 1) == 16
        self.init(storage_url)
        assert workflow.get_actor("contract-counter").value.run() == 16

    def test_delete_of_a_virtual_actor_removes_every_key_it_wrote(self, storage_url: str) -> None:
        self.init(storage_url)
        storage = open_storage(storage_url)
        ContractCounter.get_or_create("kept-counter", 0).add.run(1)
        before = list(storage.list(""))
        ContractCounter.get_or_create("doomed-counter", 0).add.run(1)
        workflow.delete("doomed-counter")
        assert list(storage.list("")) == before
        assert workflow.get_actor("kept-counter").value.run() == 1


@contextmanager
def _default_sigint_handler() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread (whatever handler was installed before)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
