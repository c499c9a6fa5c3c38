"""Resuming right after a crash: resume waits for a previous driver that is going away, and
explains a live one (who holds the workflow, and when it can be resumed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import TESTS, run_child

from durably import WorkflowRunningError, workflow

# The driver whose parent dies under it, like the engine actor of a Ray cluster whose driver
# and raylet were killed: orphaned, it lives on a little, then dies. It dies only once the
# resumer has said it is waiting, so the test sees the wait every time.
ORPHANED_DRIVER = """
import os, signal, time
from pathlib import Path
from durably import workflow

workflow.init(storage={storage!r}, executor="local")
parent = os.getppid()

@workflow.step
def answer():
    if not Path({started!r}).exists():
        Path({started!r}).write_text(str(os.getpid()))
        while os.getppid() == parent:
            time.sleep(0.05)
        while "waiting" not in Path({resumer_log!r}).read_text():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    return 42

answer.step().run(workflow_id="orphaned")
"""

# Starts the driver and dies (SIGKILL) once the driver's step runs: the driver is orphaned.
DYING_PARENT = """
import os, signal, subprocess, sys, time
from pathlib import Path
subprocess.Popen([sys.executable, "-c", {driver!r}], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not Path({started!r}).exists():
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGKILL)
"""

RESUMER = """
from durably import workflow
workflow.init(storage={storage!r}, executor="local")
print(workflow.resume("orphaned"))
"""


def test_resume_right_after_a_crash_waits_for_the_dying_driver_and_says_so(tmp_path: Path) -> None:
    storage, started = str(tmp_path / "storage"), str(tmp_path / "started")
    resumer_log = tmp_path / "resumer.log"
    resumer_log.write_text("")
    driver = ORPHANED_DRIVER.format(storage=storage, started=started, resumer_log=str(resumer_log))
    parent = run_child(DYING_PARENT.format(driver=driver, started=started))
    assert parent.returncode == -9, parent.stderr
    driver_pid = Path(started).read_text()
    with resumer_log.open("w") as log:
        resumer = subprocess.run(
            [sys.executable, "-c", RESUMER.format(storage=storage)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=240,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
            check=False,
        )
    message = resumer_log.read_text()
    assert resumer.returncode == 0, message
    assert resumer.stdout.strip().splitlines()[-1] == "42"
    assert f"previous driver (pid {driver_pid} on host" in message
    assert "is exiting; waiting up to 30 s" in message


LIVE_DRIVER = """
import time
from pathlib import Path
from durably import workflow

workflow.init(storage={storage!r}, executor="local")

@workflow.step
def wait_for_gate():
    Path({started!r}).touch()
    while not Path({gate!r}).exists():
        time.sleep(0.05)
    return "done"

print(wait_for_gate.step().run(workflow_id="held"))
"""


def test_resume_of_a_workflow_a_live_driver_holds_says_which_process_holds_it(tmp_path: Path) -> None:
    storage, started, gate = str(tmp_path / "storage"), tmp_path / "started", tmp_path / "gate"
    script = LIVE_DRIVER.format(storage=storage, started=str(started), gate=str(gate))
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert driver.poll() is None and time.monotonic() < deadline, "the driver did not start its step"
            time.sleep(0.05)
        workflow.init(storage=storage, executor="local")
        with pytest.raises(WorkflowRunningError) as raised:
            workflow.resume("held")
        assert f"held by pid {driver.pid} on host" in str(raised.value)
        assert "a running process on this host" in str(raised.value)
    finally:
        gate.touch()
        output, _ = driver.communicate(timeout=120)
    assert output.strip() == "done"


def test_resume_of_a_holder_that_stopped_renewing_says_when_it_becomes_resumable(tmp_path: Path) -> None:
    from durably._lease import Lease
    from durably._store import open_workflow_store

    storage = str(tmp_path / "storage")
    workflow.init(storage=storage, executor="local")
    assert answer.step().run(workflow_id="taken-over") == 42
    # The lease of a driver on another machine (an hour's period) that took the workflow over
    # and never renewed it since.
    store = open_workflow_store(storage, "taken-over")
    lease = Lease(store.storage, store.lease_key, "taken-over")
    held = lease.current()
    record = {"host": "another-host", "pid": 4242, "period": 3600.0, "beat": 0, "owner": "x"}
    store.storage.put(lease._key(0 if held is None else held[0] + 1), json.dumps(record).encode())
    with pytest.raises(WorkflowRunningError) as raised:
        workflow.resume("taken-over", wait_for_holder=0.5)
    found = re.search(
        r"renewals stopped \d+ s ago as seen from here; resumable in (\d+) s", str(raised.value)
    )
    assert found is not None, str(raised.value)
    assert "held by pid 4242 on host another-host" in str(raised.value)
    assert 0 < int(found.group(1)) <= 3600


@workflow.step
def answer() -> int:
    return 42


@pytest.mark.parametrize("bad", [-1, "soon", True])
def test_resume_refuses_a_wait_that_is_not_a_number_of_seconds(tmp_path: Path, bad: Any) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="local")
    with pytest.raises((TypeError, ValueError), match="wait_for_holder"):
        workflow.resume("anything", wait_for_holder=bad)
