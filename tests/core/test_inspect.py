"""The read model (durably.inspect): listings, paging, filters, a workflow's steps and error, actors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from durably_test_helpers import run_child

from durably import workflow
from durably._graph import flatten
from durably._resolve import open_storage
from durably._store import WorkflowStore
from durably.inspect import Inspector, OutputNotLoadedError, StepView

pytestmark = pytest.mark.workflow


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step(max_retries=2, retry_delay=0, metadata={"owner": "billing"})
def explode(x: int) -> int:
    raise ValueError(f"cannot take {x}")


@workflow.step
def countdown(n: int) -> Any:
    if n == 0:
        return "liftoff"
    return countdown.step(n - 1)


class Unloadable(Exception):
    """An exception that cannot be unpickled: management must never need to."""

    def __reduce__(self) -> Any:
        return (_refuse, ())


def _refuse() -> None:
    raise RuntimeError("this error cannot be loaded")


@workflow.step(max_retries=0)
def raise_unloadable() -> None:
    raise Unloadable("no way back")


@pytest.fixture
def local(storage_url: str) -> Inspector:
    """Workflows run on the local executor; an Inspector on the same storage."""
    workflow.init(storage=storage_url, executor="local")
    return Inspector(storage_url)


def _stored(storage_url: str, workflow_id: str, status: str, created: float) -> None:
    """A workflow record written through the store, without running it."""
    store = WorkflowStore(open_storage(storage_url), workflow_id)
    store.create(flatten(add.step(1, 2)), {"made": "directly"})
    store.save_status(status, epoch=0, started_at=created, ended_at=created + 1)


def test_listing_shows_status_step_counts_and_duration(local: Inspector) -> None:
    add.step(1, add.step(2, 3)).run(workflow_id="sum")
    (summary,) = local.list_workflows().items
    assert (summary.workflow_id, summary.status) == ("sum", "SUCCESSFUL")
    assert (summary.steps_finished, summary.steps_total) == (2, 2)
    assert summary.duration is not None and summary.duration >= 0
    assert summary.created is not None and summary.updated is not None
    assert summary.updated >= summary.created


def test_pages_cover_every_workflow_once_newest_id_first(storage_url: str) -> None:
    for number in range(7):
        _stored(storage_url, f"wf-{number:02d}", "SUCCESSFUL", time.time())
    inspector = Inspector(storage_url)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = inspector.list_workflows(limit=3, after=cursor)
        seen += [item.workflow_id for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"wf-{number:02d}" for number in reversed(range(7))]
    assert pages == 3


def test_status_filter_keeps_only_those_statuses(storage_url: str) -> None:
    for number, status in enumerate(["SUCCESSFUL", "FAILED", "CANCELED", "FAILED"]):
        _stored(storage_url, f"w{number}", status, time.time())
    page = Inspector(storage_url).list_workflows(status=["failed", "CANCELED"])
    assert [(item.workflow_id, item.status) for item in page.items] == [
        ("w3", "FAILED"),
        ("w2", "CANCELED"),
        ("w1", "FAILED"),
    ]


def test_prefix_filter_keeps_only_ids_that_start_with_it(storage_url: str) -> None:
    for workflow_id in ["orders-1", "orders-2", "order", "payments-1"]:
        _stored(storage_url, workflow_id, "SUCCESSFUL", time.time())
    page = Inspector(storage_url).list_workflows(prefix="orders-")
    assert [item.workflow_id for item in page.items] == ["orders-2", "orders-1"]


def test_since_and_until_bound_the_creation_time(storage_url: str) -> None:
    _stored(storage_url, "early", "SUCCESSFUL", time.time())
    middle = time.time()
    _stored(storage_url, "late", "SUCCESSFUL", time.time())
    inspector = Inspector(storage_url)
    assert [item.workflow_id for item in inspector.list_workflows(since=middle).items] == ["late"]
    assert [item.workflow_id for item in inspector.list_workflows(until=middle).items] == ["early"]


def test_filtered_paging_goes_on_past_workflows_that_do_not_match(storage_url: str) -> None:
    for number in range(10):
        _stored(storage_url, f"w{number}", "FAILED" if number % 3 == 0 else "SUCCESSFUL", time.time())
    inspector = Inspector(storage_url)
    first = inspector.list_workflows(status=["FAILED"], limit=2)
    second = inspector.list_workflows(status=["FAILED"], limit=2, after=first.next_cursor)
    assert [item.workflow_id for item in first.items + second.items] == ["w9", "w6", "w3", "w0"]
    assert (
        second.next_cursor is None
        or not inspector.list_workflows(status=["FAILED"], limit=2, after=second.next_cursor).items
    )


def test_unknown_status_is_refused_naming_the_known_ones(storage_url: str) -> None:
    with pytest.raises(ValueError, match="SUCCESSFUL"):
        Inspector(storage_url).list_workflows(status=["DONE"])


def test_counts_by_status(storage_url: str) -> None:
    for number, status in enumerate(["SUCCESSFUL", "FAILED", "FAILED"]):
        _stored(storage_url, f"w{number}", status, time.time())
    counts = Inspector(storage_url).count_by_status()
    assert (counts["SUCCESSFUL"], counts["FAILED"], counts["RUNNING"]) == (1, 2, 0)


@pytest.mark.storage_on_ray
def test_failed_workflow_shows_the_step_its_attempts_and_traceback(wf: Any, storage_url: str) -> None:
    with pytest.raises(wf.WorkflowExecutionError):
        add.step(1, explode.step(2)).run(workflow_id="broken")
    detail = Inspector(storage_url).get_workflow("broken")
    assert detail.summary.status == "FAILED"
    assert detail.error is not None
    assert (detail.error.type, detail.error.message) == ("ValueError", "cannot take 2")
    assert ", in explode\n" in detail.error.traceback  # the frame that raised, recorded where it ran
    failed, consumer = detail.steps
    assert (failed.step_id, failed.status, failed.attempts) == ("explode", "FAILED", 3)
    assert failed.error == detail.error
    assert (consumer.step_id, consumer.status, consumer.depends_on) == ("add", "PENDING", ("explode",))


def test_the_failed_step_has_the_start_and_duration_of_its_attempts(local: Inspector) -> None:
    before = time.time()
    with pytest.raises(workflow.WorkflowExecutionError):
        add.step(1, explode.step(2)).run(workflow_id="broken")
    after = time.time()
    failed, _ = local.get_workflow("broken").steps
    assert failed.status == "FAILED"
    assert failed.start is not None and before <= failed.start <= after
    assert failed.duration is not None and failed.start + failed.duration <= after


def test_finished_steps_have_start_duration_attempts_and_metadata(local: Inspector) -> None:
    add.step(1, 2).run(workflow_id="one", metadata={"team": "ops"})
    detail = local.get_workflow("one")
    (step,) = detail.steps
    assert (step.status, step.attempts) == ("SUCCESSFUL", 1)
    assert step.start is not None and step.duration is not None and step.duration >= 0
    assert detail.metadata == {"team": "ops"}
    assert detail.error is None


def test_continuations_are_nested_under_the_step_that_returned_them(local: Inspector) -> None:
    countdown.step(2).run(workflow_id="count")
    (top,) = local.get_workflow("count").steps
    chain = [top]
    while chain[-1].children:
        (child,) = chain[-1].children
        chain.append(child)
    assert [step.name for step in chain] == ["countdown"] * 3
    assert all(step.status == "SUCCESSFUL" for step in chain)


def test_a_long_chain_of_continuations_is_cut_and_says_so(local: Inspector) -> None:
    countdown.step(30).run(workflow_id="long")
    detail = local.get_workflow("long", max_depth=5)
    depth = 0
    level: tuple[StepView, ...] = detail.steps
    while level:
        depth += 1
        level = level[0].children
    assert depth == 6
    assert detail.steps_truncated


def test_a_failure_that_cannot_be_unpickled_is_still_shown(local: Inspector) -> None:
    with pytest.raises(workflow.WorkflowError):
        raise_unloadable.step().run(workflow_id="opaque")
    assert [item.status for item in local.list_workflows().items] == ["FAILED"]
    error = local.get_workflow("opaque").error
    assert error is not None and error.message == "no way back"


def test_output_preview_needs_permission_to_unpickle(local: Inspector) -> None:
    add.step(1, add.step(2, 3)).run(workflow_id="sum")
    with pytest.raises(OutputNotLoadedError, match="allow_unpickle"):
        local.output_preview("sum")
    assert local.output_preview("sum", allow_unpickle=True) == "6"
    assert local.output_preview("sum", "add", allow_unpickle=True) == "5"


def test_output_preview_is_cut_at_max_chars(local: Inspector) -> None:
    add.step("x" * 50, "y" * 50).run(workflow_id="long-text")
    preview = local.output_preview("long-text", max_chars=10, allow_unpickle=True)
    assert len(preview) == 10 and preview.endswith("…")


def test_unknown_workflow_raises_not_found(local: Inspector) -> None:
    with pytest.raises(workflow.WorkflowNotFoundError, match="nosuch"):
        local.get_workflow("nosuch")


@workflow.virtual_actor
class Tally:
    def __init__(self) -> None:
        self.total = 0

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total


def test_actors_are_listed_with_their_calls_and_state_on_request(local: Inspector) -> None:
    tally = Tally.get_or_create("tally")
    tally.add.run(2)
    tally.add.run(3)
    (summary,) = local.list_actors().items
    assert (summary.actor_id, summary.class_name, summary.calls) == ("tally", "Tally", 2)
    detail = local.get_actor("tally")
    assert [(call.seq, call.method) for call in detail.recent_calls] == [
        (2, "add"),
        (1, "add"),
        (0, "__init__"),
    ]
    assert detail.state_preview is None
    assert "5" in (local.get_actor("tally", allow_unpickle=True).state_preview or "")


@pytest.mark.needs_persistent_storage
def test_reading_never_starts_or_joins_ray(local: Inspector, storage_url: str) -> None:
    add.step(1, 2).run(workflow_id="plain")
    child = run_child(
        f"""
        import ray
        from durably.inspect import Inspector
        inspector = Inspector({storage_url!r})
        inspector.list_workflows(); inspector.get_workflow("plain"); inspector.count_by_status()
        print(ray.is_initialized())
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"
