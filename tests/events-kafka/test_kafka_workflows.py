"""wait_for_event with the Kafka listener inside real workflows: delivery, crashes, broker restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import kafka_workflow_support
import pytest
from kafka_support import WAIT, Emitter, create_topic, wait_for_member
from kafka_workflow_support import COUNTS_ENV, value_of
from servers.kafka import KafkaBroker

from durably import workflow
from durably_kafka import KafkaEventListener

HERE = Path(__file__).resolve().parent
# Ray workers and the events actor cannot import this test folder.
cloudpickle.register_pickle_by_value(kafka_workflow_support)


def _result(handle: Any) -> Any:
    import ray

    if isinstance(handle, ray.ObjectRef):
        return ray.get(handle, timeout=WAIT)
    return handle.result(timeout=WAIT)


def _count(folder: Path, name: str) -> int:
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv(COUNTS_ENV, str(folder))
    return folder


def _next_value(servers: str, topic: str, group_id: str) -> bytes | None:
    """The value a new workflow waiting on the group receives (local executor, its own storage)."""
    return value_of.step(
        workflow.wait_for_event(
            KafkaEventListener, topic, bootstrap_servers=servers, group_id=group_id, timeout=WAIT
        )
    ).run()


# -- delivery ----------------------------------------------------------------------------------
def test_kafka_message_is_delivered_into_a_workflow(
    wf: Any, kafka: KafkaBroker, topic: str, group_id: str
) -> None:
    waiting = wf.wait_for_event(
        KafkaEventListener, topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group_id, timeout=WAIT
    )
    handle = value_of.step(waiting).run_async(workflow_id="w")
    wait_for_member(kafka.bootstrap_servers, group_id)
    Emitter(kafka.bootstrap_servers, topic)("order paid")
    assert _result(handle) == b"order paid"


def test_kafka_listener_is_found_by_its_registered_name(
    wf: Any, kafka: KafkaBroker, topic: str, group_id: str, emit: Emitter
) -> None:
    emit("by name")
    waiting = wf.wait_for_event("kafka", topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group_id)
    assert value_of.step(waiting).run(workflow_id="w") == b"by name"


def test_delivered_message_is_committed_for_its_group(
    wf: Any, kafka: KafkaBroker, topic: str, group_id: str, emit: Emitter
) -> None:
    emit("first")
    emit("second")
    servers = kafka.bootstrap_servers
    first = wf.wait_for_event(KafkaEventListener, topic, bootstrap_servers=servers, group_id=group_id)
    assert value_of.step(first).run(workflow_id="w1") == b"first"
    second = wf.wait_for_event(KafkaEventListener, topic, bootstrap_servers=servers, group_id=group_id)
    assert value_of.step(second).run(workflow_id="w2") == b"second"


# -- crashes -----------------------------------------------------------------------------------
CHILD = """
import sys
sys.path.insert(0, {here!r})
import cloudpickle, kafka_workflow_support
cloudpickle.register_pickle_by_value(kafka_workflow_support)
from durably import workflow
from kafka_workflow_support import CountingKafkaListener, value_of
workflow.init(storage={storage!r}, executor="local")
waiting = workflow.wait_for_event(
    CountingKafkaListener, {topic!r}, bootstrap_servers={servers!r}, group_id={group!r}, timeout=120
)
print(value_of.step(waiting).run(workflow_id="w"))
"""


def _run_crashing_child(
    storage: str, servers: str, topic: str, group_id: str, counts: Path, marker: str
) -> None:
    (counts / marker).touch()
    script = CHILD.format(here=str(HERE), storage=storage, topic=topic, servers=servers, group=group_id)
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=WAIT * 2
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr


def test_workflow_killed_before_the_message_is_stored_receives_it_again(
    kafka: KafkaBroker, topic: str, group_id: str, emit: Emitter, counts: Path, tmp_path: Path
) -> None:
    storage = str(tmp_path / "storage")
    emit("first")
    emit("second")
    _run_crashing_child(storage, kafka.bootstrap_servers, topic, group_id, counts, "crash-after-poll")
    workflow.init(storage=storage, executor="local")
    assert workflow.resume("w") == b"first"
    assert (_count(counts, "poll"), _count(counts, "ack")) == (2, 1)
    assert _next_value(kafka.bootstrap_servers, topic, group_id) == b"second"


def test_workflow_killed_after_the_message_is_stored_does_not_receive_it_twice(
    kafka: KafkaBroker, topic: str, group_id: str, emit: Emitter, counts: Path, tmp_path: Path
) -> None:
    storage = str(tmp_path / "storage")
    emit("first")
    emit("second")
    _run_crashing_child(storage, kafka.bootstrap_servers, topic, group_id, counts, "crash-in-ack")
    workflow.init(storage=storage, executor="local")
    assert workflow.resume("w") == b"first"
    assert (_count(counts, "poll"), _count(counts, "ack")) == (1, 2)
    assert _next_value(kafka.bootstrap_servers, topic, group_id) == b"second"


# -- broker restart ----------------------------------------------------------------------------
@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test alone, since the test stops and starts it."""
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_message_arrives_once_when_the_broker_restarts_while_a_workflow_waits(
    wf: Any, own_broker: KafkaBroker, counts: Path
) -> None:
    servers = own_broker.bootstrap_servers
    topic = create_topic(servers)
    group_id = "restart-group"
    waiting = wf.wait_for_event(
        KafkaEventListener, topic, bootstrap_servers=servers, group_id=group_id, timeout=WAIT
    )
    handle = value_of.step(waiting).run_async(workflow_id="w")
    wait_for_member(servers, group_id)
    own_broker.restart()
    assert wf.get_status("w") == wf.WorkflowStatus.RUNNING
    Emitter(servers, topic)("sent after the restart")
    assert _result(handle) == b"sent after the restart"
    Emitter(servers, topic)("next")
    next_waiting = wf.wait_for_event(KafkaEventListener, topic, bootstrap_servers=servers, group_id=group_id)
    assert value_of.step(next_waiting).run(workflow_id="next") == b"next"
