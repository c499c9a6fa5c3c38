"""A failure is stored as plain text beside its pickled exception: management never unpickles it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from durably import _codec, workflow
from durably._codec import RecordKind
from durably._errors import WorkflowExecutionError
from durably._inspect import workflow_store


class Picky(Exception):
    """An exception that pickles but cannot be unpickled (its ``__init__`` takes two arguments)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


@workflow.step(max_retries=0)
def fails_picky() -> None:
    raise Picky(7, "no disk")


@workflow.step(max_retries=0, catch_exceptions=True)
def catches_picky() -> None:
    raise Picky(8, "caught")


@pytest.fixture
def local(tmp_path: Path) -> None:
    workflow.init(storage=str(tmp_path / "storage"), executor="local")


def _fail(workflow_id: str) -> None:
    with pytest.raises(WorkflowExecutionError):
        fails_picky.step().run(workflow_id)


def test_status_and_listing_work_when_the_stored_exception_cannot_be_unpickled(local: None) -> None:
    _fail("picky")
    assert workflow.get_status("picky") == workflow.WorkflowStatus.FAILED
    assert ("picky", workflow.WorkflowStatus.FAILED) in workflow.list_all()
    assert workflow.get_metadata("picky")["status"] == "FAILED"


def test_get_output_reports_an_exception_it_cannot_load_by_its_text(local: None) -> None:
    _fail("picky")
    with pytest.raises(WorkflowExecutionError, match="Picky: code 7: no disk"):
        workflow.get_output("picky")


def test_the_status_record_is_json_with_the_error_type_message_and_traceback(local: None) -> None:
    _fail("picky")
    store = workflow_store("picky")
    (status_key,) = store.storage.list(store.key("statuses"))
    record = json.loads(store.storage.get(status_key))
    assert record["status"] == "FAILED"
    assert (record["error_type"], record["error_message"]) == ("Picky", "code 7: no disk")
    assert "fails_picky" in record["traceback"]


def test_a_caught_exception_that_cannot_be_unpickled_is_checkpointed_as_its_text(local: None) -> None:
    result, error = catches_picky.step().run("caught")
    assert result is None and "Picky: code 8: caught" in str(error)
    assert workflow.get_output("caught", name="catches_picky")[1].args == error.args


def test_a_status_record_of_the_old_pickled_format_still_reads(local: None) -> None:
    _fail("old")
    store = workflow_store("old")
    old_error = WorkflowExecutionError("old", "s", "ValueError: from before")
    meta: dict[str, Any] = {"status": "FAILED", "error": "ValueError: from before", "failed_step": "s"}
    store.storage.put(
        store.key("status"), _codec.encode_record(RecordKind.STATUS, meta, _codec.dumps(old_error))
    )
    store.storage.delete_prefix(store.key("failure"))
    store.storage.delete_prefix(store.key("statuses"))
    assert workflow.get_status("old") == workflow.WorkflowStatus.FAILED
    with pytest.raises(WorkflowExecutionError, match="from before"):
        workflow.get_output("old")
