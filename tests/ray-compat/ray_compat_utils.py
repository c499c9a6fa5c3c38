"""What Ray's workflow tests imported from ray.workflow.tests.utils and Ray's test helpers, on durably.

Ray's test files import these names from places that no longer exist (ray.workflow.tests.utils,
helpers that moved inside ray._private); their import lines point here instead.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from ray._common.test_utils import SignalActor, wait_for_condition

from durably import workflow

__all__ = [
    "SignalActor",
    "check_global_mark",
    "clear_marks",
    "run_string_as_driver",
    "set_global_mark",
    "skip_flaky_core_test_premerge",
    "unset_global_mark",
    "update_workflow_options",
    "wait_for_condition",
]

#: Names the folder of one session's marks (conftest.py sets it to a fresh folder).
MARKS_ENV = "DURABLY_RAY_COMPAT_MARKS"
# Marks are files, so a step on any worker and the test driver see the same flag (as in Ray).
# One folder per session: two sessions on one machine (several engineers, CI) would otherwise
# clear and set each other's marks. Workers get the path with this module, which the suite
# pickles by value; driver scripts that tests start inherit the variable.
_GLOBAL_MARK_PATH = pathlib.Path(
    os.environ.get(MARKS_ENV) or pathlib.Path(tempfile.gettempdir()) / f"durably-ray-compat-{os.getuid()}"
)
_GLOBAL_MARK_PATH.mkdir(exist_ok=True)

F = TypeVar("F", bound=Callable[..., Any])


def unset_global_mark(name: str = "workflow") -> None:
    mark_file = _GLOBAL_MARK_PATH / f"workflow-{name}"
    if mark_file.exists():
        mark_file.unlink()


def set_global_mark(name: str = "workflow") -> None:
    (_GLOBAL_MARK_PATH / f"workflow-{name}").touch()


def check_global_mark(name: str = "workflow") -> bool:
    return (_GLOBAL_MARK_PATH / f"workflow-{name}").exists()


def clear_marks() -> None:
    for file in _GLOBAL_MARK_PATH.glob("**/workflow-*"):
        file.unlink()


def update_workflow_options(f: Any, **workflow_options: Any) -> Any:
    """Ray's helper: the remote function with extra workflow options (through the public API)."""
    return f.options(**workflow.options(**workflow_options))


def skip_flaky_core_test_premerge(reason: str) -> Callable[[F], F]:
    """Ray skipped these only in its own pre-merge CI; here they always run."""

    def keep(test: F) -> F:
        return test

    return keep


def run_string_as_driver(driver_script: str, env: dict[str, str] | None = None) -> str:
    """Run a Python script as a separate driver process; its output, or an error if it failed."""
    completed = subprocess.run(
        [sys.executable, "-"],
        input=driver_script,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        raise subprocess.CalledProcessError(
            completed.returncode, "driver", completed.stdout, completed.stderr
        )
    return completed.stdout + completed.stderr


def skip_client_mode_test() -> None:
    """Ray skipped some tests under Ray Client; this suite never runs in client mode."""


def run_string_as_driver_nonblocking(
    driver_script: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start a Python script as a separate driver process and return at once."""
    process = subprocess.Popen(
        [sys.executable, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(driver_script)
    process.stdin.close()
    return process


class RayWorkflowInternal:
    """Stands for a part of ray.workflow's internals (its storage layout, its debug storage).

    Ray's test files import these at module level; the tests that use them are listed in
    not_applicable.txt, and this placeholder lets the rest of the file import.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            # Python's own lookups (pickle's `__setstate__` when a step that uses this module is
            # loaded on a worker, before `_name` is set) must find nothing, not recurse.
            raise AttributeError(attribute)
        raise NotImplementedError(
            f"{self._name}.{attribute} is an internal of ray.workflow; durably has no such thing"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{self._name} is an internal of ray.workflow; durably has no such thing")


workflow_storage = RayWorkflowInternal("ray.workflow.workflow_storage")
DebugStorage = RayWorkflowInternal("ray.workflow.storage.debug.DebugStorage")
assert_task_checkpoints = RayWorkflowInternal("ray.workflow.tests.utils.assert_task_checkpoints")
# ray.workflow.virtual_actor_class held VirtualActorNotInitializedError; durably has no such module.
virtual_actor_class = RayWorkflowInternal("ray.workflow.virtual_actor_class")
