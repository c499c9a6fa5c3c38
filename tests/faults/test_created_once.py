"""Records created once (event mailbox and claims, an actor's class, code snapshot and index marker)
survive a write refused before it happened and a write whose answer was lost: retried, and after a
lost answer recognised as the writer's own record rather than another writer's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from durably_faults.faulty_storage import FaultyStorage, faulty_url

from durably._store import WorkflowStore
from durably.actors._store import ActorStore, CallRecord

pytestmark = pytest.mark.faults_smoke

FAULTS = ["before", "after"]


@pytest.fixture
def storage(tmp_path: Path) -> FaultyStorage:
    return FaultyStorage(faulty_url(str(tmp_path / "storage"), seed=1))


@pytest.mark.parametrize("fault", FAULTS)
def test_an_event_sent_through_a_write_fault_is_stored_once(storage: FaultyStorage, fault: str) -> None:
    store = WorkflowStore(storage, "wf")
    storage.inject(fault, "workflows/wf/mailbox")
    assert store.add_message("approval", {"ok": True}) == 0
    assert store.message_numbers("approval") == [0]
    assert store.load_message("approval", 0) == {"ok": True}
    assert store.add_message("approval", {"ok": False}) == 1


@pytest.mark.parametrize("fault", FAULTS)
def test_a_claim_through_a_write_fault_is_its_claimers_and_no_one_elses(
    storage: FaultyStorage, fault: str
) -> None:
    store = WorkflowStore(storage, "wf")
    number = store.add_message("approval", "yes")
    storage.inject(fault, "workflows/wf/claims")
    assert store.claim_message("approval", number, "step-a") is True
    assert store.claim_message("approval", number, "step-b") is False


@pytest.mark.parametrize("fault", FAULTS)
def test_an_actor_class_stored_through_a_write_fault_counts_as_created(
    storage: FaultyStorage, fault: str
) -> None:
    store = ActorStore(storage, "counter")
    storage.inject(fault, "actors/counter/class")
    assert store.create_class("Counter", "incarnation-1", b"pickled") is True
    assert store.load_class_record()[0]["incarnation"] == "incarnation-1"
    assert ActorStore(storage, "counter").create_class("Counter", "incarnation-2", b"pickled") is False


@pytest.mark.parametrize("fault", FAULTS)
def test_an_actor_code_snapshot_recorded_through_a_write_fault_is_kept(
    storage: FaultyStorage, fault: str
) -> None:
    store = ActorStore(storage, "counter")
    storage.inject(fault, "actors/counter/runtime_env")
    assert store.save_runtime_env({"working_dir": "code/abc.zip"}) is True
    assert store.load_runtime_env() == {"working_dir": "code/abc.zip"}


@pytest.mark.parametrize("fault", FAULTS)
def test_an_actor_listed_through_a_write_fault_is_listed(storage: FaultyStorage, fault: str) -> None:
    store = ActorStore(storage, "counter")
    storage.inject(fault, "actor-index/counter")
    store.mark_listed("Counter")
    assert store.is_listed()
    assert store.load_marker() == {"class_name": "Counter"}


@pytest.mark.parametrize("fault", FAULTS)
def test_an_actor_constructed_through_a_write_fault_has_its_first_state_once(
    storage: FaultyStorage, fault: str
) -> None:
    store = ActorStore(storage, "counter")
    storage.inject(fault, "actors/counter/log")
    constructed = CallRecord(0, "constructor", "__init__", "incarnation-1", b"state", b"result")
    assert store.append_constructed(constructed) is True
    assert store.read(0) == constructed
    assert store.append_constructed(dataclasses.replace(constructed, call_id="another")) is False
