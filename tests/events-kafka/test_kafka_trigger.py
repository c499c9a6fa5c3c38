"""KafkaWorkflowTrigger with the real durably engine: one workflow per message, even across crashes."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka_support import FAST_SESSION, WAIT, Emitter, run_child

from durably import workflow
from durably_kafka import KafkaConfigError, KafkaEvent, KafkaWorkflowTrigger

CRASH_EXIT = 17


@pytest.fixture
def local_workflows(tmp_path: Path) -> Path:
    storage = tmp_path / "durably"
    workflow.init(storage=str(storage), executor="local")
    return storage


def test_each_message_starts_one_workflow_with_an_id_from_its_position(
    kafka: Any, topic: str, group_id: str, emit: Emitter, local_workflows: Path
) -> None:
    @workflow.step
    def shout(value: bytes) -> str:
        return value.decode().upper()

    for word in ["a", "b", "c"]:
        emit(word)
    started: list[tuple[str, Any]] = []
    trigger = KafkaWorkflowTrigger(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group_id,
        make_workflow=lambda event: shout.step(event.value),
        on_workflow_started=lambda event, workflow_id, handle: started.append((workflow_id, handle)),
    )
    assert trigger.run(max_messages=3, timeout=WAIT) == 3
    assert [workflow_id for workflow_id, _ in started] == [f"{group_id}-{topic}-0-{n}" for n in range(3)]
    assert [handle.result(timeout=WAIT) for _, handle in started] == ["A", "B", "C"]
    assert workflow.get_metadata(started[1][0])["user_metadata"]["kafka"] == {
        "topic": topic,
        "partition": 0,
        "offset": 1,
    }


def test_a_message_whose_workflow_exists_is_not_started_again(
    kafka: Any, topic: str, group_id: str, emit: Emitter, local_workflows: Path
) -> None:
    runs: list[str] = []

    @workflow.step
    def record(value: bytes) -> str:
        return value.decode()

    emit("first")
    emit("second")
    record.step(b"started elsewhere").run(workflow_id=f"{group_id}-{topic}-0-0")
    trigger = KafkaWorkflowTrigger(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group_id,
        make_workflow=lambda event: record.step(event.value),
        on_workflow_started=lambda event, workflow_id, handle: runs.append(handle.result(timeout=WAIT)),
    )
    assert trigger.run(max_messages=2, timeout=WAIT) == 1
    assert runs == ["second"]
    assert workflow.get_output(f"{group_id}-{topic}-0-0") == "started elsewhere"


def test_custom_workflow_ids_are_used(
    kafka: Any, topic: str, group_id: str, emit: Emitter, local_workflows: Path
) -> None:
    @workflow.step
    def echo(value: bytes) -> bytes:
        return value

    emit("x", key="order-17")
    trigger = KafkaWorkflowTrigger(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group_id,
        make_workflow=lambda event: echo.step(event.value),
        workflow_id_for=lambda event: f"order-{(event.key or b'').decode()}",
        on_workflow_started=lambda event, workflow_id, handle: handle.result(timeout=WAIT),
    )
    assert trigger.run(max_messages=1, timeout=WAIT) == 1
    assert workflow.get_output("order-order-17") == b"x"


def test_invalid_client_config_fails_when_the_trigger_is_made(kafka: Any, topic: str, group_id: str) -> None:
    with pytest.raises(KafkaConfigError, match=r"security\.protocol"):
        KafkaWorkflowTrigger(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=group_id,
            make_workflow=lambda event: None,
            security_protocol="carrier-pigeon",
        )


def test_consumer_killed_mid_stream_and_restarted_starts_each_workflow_exactly_once(
    kafka: Any, topic: str, group_id: str, emit: Emitter, tmp_path: Path
) -> None:
    total, crash_after = 8, 3
    values = [f"message-{n}-{uuid.uuid4().hex[:6]}" for n in range(total)]
    for value in values:
        emit(value)
    effects = tmp_path / "effects"
    effects.mkdir()
    spec = {
        "topic": topic,
        "bootstrap_servers": kafka.bootstrap_servers,
        "group_id": group_id,
        "storage": str(tmp_path / "durably"),
        "effects": str(effects),
        "started_log": str(tmp_path / "started.log"),
        "stop_on_value": values[-1],
        "client_config": FAST_SESSION,  # the killed consumer leaves the group in seconds
    }
    # dies right after the 3rd workflow finished, before that message's offset is committed
    crashed = run_child("trigger", {**spec, "crash_after": crash_after}, tmp_path)
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert len((tmp_path / "started.log").read_text().split()) == crash_after

    restarted = run_child("trigger", spec, tmp_path)
    assert restarted.returncode == 0, restarted.stderr

    started = (tmp_path / "started.log").read_text().split()
    expected_ids = [f"{group_id}-{topic}-0-{offset}" for offset in range(total)]
    assert started == expected_ids  # each workflow started once, in order, none twice
    workflow.init(storage=str(tmp_path / "durably"), executor="local")
    assert sorted(workflow_id for workflow_id, _ in workflow.list_all()) == sorted(expected_ids)
    assert [workflow.get_output(workflow_id) for workflow_id in expected_ids] == [v.upper() for v in values]
    runs_per_offset = Counter(int(path.name.split(".")[0]) for path in effects.iterdir())
    assert runs_per_offset == dict.fromkeys(range(total), 1)


def test_a_failing_make_workflow_stops_the_trigger_and_leaves_the_message_uncommitted(
    kafka: Any, topic: str, group_id: str, emit: Emitter, local_workflows: Path
) -> None:
    @workflow.step
    def echo(value: bytes) -> bytes:
        return value

    emit("payload", key="k", headers=[("h", b"v")])
    seen: list[KafkaEvent] = []

    def broken(event: KafkaEvent) -> Any:
        seen.append(event)
        raise RuntimeError("cannot build this workflow")

    common = {"bootstrap_servers": kafka.bootstrap_servers, "group_id": group_id}
    with pytest.raises(RuntimeError, match="cannot build"):
        KafkaWorkflowTrigger(topic, make_workflow=broken, **common).run(max_messages=1, timeout=WAIT)
    fixed = KafkaWorkflowTrigger(topic, make_workflow=lambda event: echo.step(event.value), **common)
    assert fixed.run(max_messages=1, timeout=WAIT) == 1
    assert [(e.key, e.value, e.header("h"), e.offset) for e in seen] == [(b"k", b"payload", b"v", 0)]
    assert workflow.get_output(f"{group_id}-{topic}-0-0", timeout=WAIT) == b"payload"
