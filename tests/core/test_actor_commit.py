"""The virtual-actor commit: a writer that stalls after committing never applies its call twice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from durably import _codec, workflow
from durably.actors._commit import ActorCore
from durably.actors._store import ANCESTRY, COMPACT_EVERY, KEEP, ActorStore, CallRecord
from durably.actors._target import Target
from durably.storage import TransientStorageError


@workflow.virtual_actor
class Tally:
    def __init__(self) -> None:
        self.count = 0

    def incr(self) -> int:
        self.count += 1
        return self.count

    @workflow.virtual_actor.readonly
    def value(self) -> int:
        return self.count


class _Stalls(ActorStore):
    """The stalled writer's storage: while it stalls (before or after its first write), others go on."""

    def __init__(self, store: ActorStore, others: ActorCore, target: Target, calls: int, after: bool) -> None:
        super().__init__(store.storage, store.actor_id)
        self.others, self.target, self.calls, self.after = others, target, calls, after

    def _others_go_on(self) -> None:
        for number in range(self.calls):
            self.others.apply(self.target, "incr", (), {}, f"other-{number}")
        self.calls = 0

    def append(self, record: CallRecord) -> bool:
        if not self.after:
            self._others_go_on()
        committed = super().append(record)
        if self.after:
            self._others_go_on()
        return committed


CALLS_WHILE_STALLED = KEEP + COMPACT_EVERY - 1  # enough for a compaction to remove the writer's base and slot
#: More commits than a record's ancestry reaches back, and several compactions.
LONG_STALL = ANCESTRY + 2 * COMPACT_EVERY


def _stalled_writer(
    tmp_path: Path, after: bool, calls: int = CALLS_WHILE_STALLED
) -> tuple[ActorCore, ActorCore, Target]:
    storage_url = str(tmp_path / "storage")
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("tally")
    target = Target(storage_url, "local", "tally")
    others = ActorCore(storage_url, "tally")
    stalled = ActorCore(storage_url, "tally")
    stalled.store = _Stalls(stalled.store, others, target, calls, after)
    return stalled, others, target


def test_a_writer_that_stalls_past_a_compaction_after_committing_does_not_apply_its_call_again(
    tmp_path: Path,
) -> None:
    stalled, others, target = _stalled_writer(tmp_path, after=True)
    assert stalled.apply(target, "incr", (), {}, "stalled-call") == 1
    assert others.apply(target, "incr", (), {}, "last") == CALLS_WHILE_STALLED + 2


def test_a_writer_whose_slot_was_compacted_before_it_wrote_applies_its_call_on_the_new_head(
    tmp_path: Path,
) -> None:
    stalled, others, target = _stalled_writer(tmp_path, after=False)
    assert stalled.apply(target, "incr", (), {}, "stalled-call") == CALLS_WHILE_STALLED + 1
    assert others.apply(target, "incr", (), {}, "last") == CALLS_WHILE_STALLED + 2


def test_a_writer_that_stalls_past_many_compactions_after_committing_does_not_apply_its_call_again(
    tmp_path: Path,
) -> None:
    stalled, others, target = _stalled_writer(tmp_path, after=True, calls=LONG_STALL)
    assert stalled.apply(target, "incr", (), {}, "stalled-call") == 1
    assert others.apply(target, "incr", (), {}, "last") == LONG_STALL + 2


def test_a_writer_whose_slot_was_compacted_long_before_it_wrote_applies_its_call_once_on_the_new_head(
    tmp_path: Path,
) -> None:
    # The fault suite's actor seed 0: a slow write landed more than ANCESTRY commits late; the
    # writer gave up with its stale record left in the log, and its restarted caller took that
    # record for the call's commit (the counter was 398 after 400 calls).
    stalled, others, target = _stalled_writer(tmp_path, after=False, calls=LONG_STALL)
    assert stalled.apply(target, "incr", (), {}, "stalled-call") == LONG_STALL + 1
    restarted = ActorCore(stalled.store.storage.url, "tally")
    assert restarted.apply(target, "incr", (), {}, "stalled-call") == LONG_STALL + 1
    assert others.apply(target, "incr", (), {}, "last") == LONG_STALL + 2


@pytest.mark.parametrize("others_commit", [1, CALLS_WHILE_STALLED, LONG_STALL])
def test_a_writer_whose_own_commit_is_its_head_applies_its_next_call_once_on_others_newer_head(
    tmp_path: Path, others_commit: int
) -> None:
    # It builds on its own last commit without reading the log: the others' commits since (and
    # the compactions they ran) must still be found, by the conditional write or the base check.
    writer, others, target = _stalled_writer(tmp_path, after=False, calls=0)
    assert writer.apply(target, "incr", (), {}, "first") == 1
    writer.store.calls = others_commit  # others go on before its next write
    assert writer.apply(target, "incr", (), {}, "second") == others_commit + 2
    assert others.apply(target, "incr", (), {}, "last") == others_commit + 3


def test_a_stale_record_left_below_the_log_does_not_answer_its_call(tmp_path: Path) -> None:
    # A writer killed after writing into a compacted slot, before deleting its write.
    storage_url = str(tmp_path / "storage")
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("tally")
    target = Target(storage_url, "local", "tally")
    core = ActorCore(storage_url, "tally")
    for number in range(LONG_STALL):
        core.apply(target, "incr", (), {}, f"call-{number}")
    _, head = core.sync()
    assert not core.store.has(1)
    stale = dataclasses.replace(head, seq=1, call_id="killed-writer", result=_codec.dumps(-1))
    assert core.store.append(stale)
    restarted = ActorCore(storage_url, "tally")  # the killed writer's caller, retrying its call
    assert restarted.apply(target, "incr", (), {}, "killed-writer") == LONG_STALL + 1


def test_a_call_id_retried_long_after_its_record_was_compacted_gets_its_result_and_is_not_applied_again(
    tmp_path: Path,
) -> None:
    storage_url = str(tmp_path / "storage")
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("tally")
    target = Target(storage_url, "local", "tally")
    core = ActorCore(storage_url, "tally")
    core.apply(target, "incr", (), {}, "early")
    for number in range(LONG_STALL):
        core.apply(target, "incr", (), {}, f"later-{number}")
    restarted = ActorCore(storage_url, "tally")  # a caller process that restarted slowly and retries
    assert restarted.apply(target, "incr", (), {}, "early") == 1
    assert restarted.apply(target, "incr", (), {}, "last") == LONG_STALL + 2


class _Killed(BaseException):
    """The writer's process dies here (nothing after this point of its commit runs)."""


class _KilledBeforeDelete(_Stalls):
    """The stalled writer's storage: it dies between its stale write and that write's delete."""

    def forget(self, seq: int) -> None:
        raise _Killed


def _lagging_reader_and_killed_stale_writer(
    tmp_path: Path, seen: int = 0, calls: int = LONG_STALL
) -> tuple[ActorCore, Target]:
    """A process that last saw the record at ``seen``, and a stale record resting on that record.

    The killed writer applied its call on the same record, wrote it into ``seen + 1`` after
    others made ``calls`` commits and compaction emptied that slot, and died before deleting it:
    the record the lagging process probes next is that stale one.
    """
    storage_url = str(tmp_path / "storage")
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("tally")
    target = Target(storage_url, "local", "tally")
    others = ActorCore(storage_url, "tally")
    for number in range(seen):
        others.apply(target, "incr", (), {}, f"early-{number}")
    lagging = ActorCore(storage_url, "tally")
    lagging.sync()
    killed = ActorCore(storage_url, "tally")
    killed.store = _KilledBeforeDelete(killed.store, others, target, calls, after=False)
    with pytest.raises(_Killed):
        killed.apply(target, "incr", (), {}, "killed-writer")
    assert killed.store.has(seen + 1), (
        "the stale record must be left in the log for this test to mean anything"
    )
    return lagging, target


def test_a_process_far_behind_applies_its_call_on_the_latest_state_past_a_killed_writers_stale_record(
    tmp_path: Path,
) -> None:
    lagging, target = _lagging_reader_and_killed_stale_writer(tmp_path)
    assert lagging.apply(target, "incr", (), {}, "lagging-call") == LONG_STALL + 1


def test_a_process_far_behind_reads_the_latest_state_past_a_killed_writers_stale_record(
    tmp_path: Path,
) -> None:
    lagging, target = _lagging_reader_and_killed_stale_writer(tmp_path)
    assert lagging.apply_readonly(target, "value", (), {}) == LONG_STALL


def test_a_killed_writers_stale_record_that_a_process_probed_past_does_not_answer_the_calls_retry(
    tmp_path: Path,
) -> None:
    # The stale record sits just below the run that compaction kept (its slot emptied, the next
    # not): the lagging process probes through it on its way to the head.
    seen = COMPACT_EVERY - 2
    lagging, target = _lagging_reader_and_killed_stale_writer(tmp_path, seen, calls=COMPACT_EVERY + 2)
    assert lagging.store.has(seen + 2), "the run must start right above the stale record"
    assert lagging.apply(target, "incr", (), {}, "killed-writer") == seen + COMPACT_EVERY + 3


class _LosesFirstAnswer(ActorStore):
    """The first commit lands in storage, but its answer is lost (a transient error after the write)."""

    lost = False

    def append(self, record: CallRecord) -> bool:
        committed = super().append(record)
        if not self.lost:
            self.lost = True
            raise TransientStorageError("injected: written, answer lost")
        return committed


def test_a_commit_whose_answer_was_lost_is_not_applied_again(tmp_path: Path) -> None:
    # Found by the fault suite (actor seed 1: the counter was 402 after 400 calls).
    storage_url = str(tmp_path / "storage")
    workflow.init(storage=storage_url, executor="local")
    Tally.get_or_create("tally")
    target = Target(storage_url, "local", "tally")
    core = ActorCore(storage_url, "tally")
    core.store = _LosesFirstAnswer(core.store.storage, core.store.actor_id)
    assert core.apply(target, "incr", (), {}, "first") == 1
    assert core.apply(target, "incr", (), {}, "second") == 2
