"""Ray 1.x workflow code (``from durably import workflow_v1 as workflow``) fails the way 1.x did."""

from __future__ import annotations

from typing import Any

import pytest
from ray.exceptions import RaySystemError

from durably import workflow_v1

pytestmark = pytest.mark.workflow


@pytest.fixture
def wf1(storage_url: str, executor: str) -> Any:
    """The 1.x module, initialised on a fresh storage with the executor under test."""
    workflow_v1.init(storage=storage_url, executor=executor)
    return workflow_v1


def test_a_failed_step_raises_a_ray_system_error_that_is_a_workflow_execution_error(wf1: Any) -> None:
    @wf1.step(max_retries=0)
    def rejects() -> int:
        raise LookupError("no row 7")

    with pytest.raises(RaySystemError, match="no row 7") as raised:
        rejects.step().run(workflow_id="rejected")
    assert isinstance(raised.value, wf1.WorkflowExecutionError)
    assert isinstance(raised.value.__cause__, LookupError)


def test_a_step_with_changed_options_stays_a_1x_step(wf1: Any) -> None:
    @wf1.step
    def rejects() -> int:
        raise LookupError("no row 7")

    with pytest.raises(RaySystemError, match="no row 7"):
        rejects.options(max_retries=0).step().options(name="renamed").run(workflow_id="rejected")
