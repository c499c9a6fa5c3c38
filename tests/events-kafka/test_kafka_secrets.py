"""A Kafka workflow's secrets stay in the environment: no stored byte holds them."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from kafka_support import WAIT, Emitter
from kafka_workflow_support import value_of
from servers.kafka import KafkaBroker

from durably import workflow
from durably._resolve import open_raw_storage
from durably_kafka import KafkaEventListener

SECRET = "hunter2-do-not-store-me"


def _run_an_event_workflow(
    storage: str,
    workflow_id: str,
    payload: bytes,
    kafka: KafkaBroker,
    topic: str,
    group_id: str,
    emit: Emitter,
) -> dict[str, bytes]:
    """Run a workflow that waits for ``payload`` on Kafka; every stored record, by key (raw bytes)."""
    workflow.init(storage=storage, executor="local")
    emit(payload.decode())
    waiting = workflow.wait_for_event(
        KafkaEventListener, topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group_id, timeout=WAIT
    )
    assert value_of.step(waiting).run(workflow_id=workflow_id) == payload
    raw = open_raw_storage(storage)
    stored = {key: raw.get(key) for key in raw.list("")}
    assert any(key.startswith(f"workflows/{workflow_id}/events/") for key in stored)
    return stored


def test_a_secret_passed_as_a_listener_argument_is_refused_pointing_at_the_client_config_variable(
    kafka: KafkaBroker, topic: str, group_id: str
) -> None:
    with pytest.raises(ValueError, match="DURABLY_KAFKA_CLIENT_CONFIG"):
        workflow.wait_for_event(
            KafkaEventListener,
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=group_id,
            **{"sasl.password": SECRET},
        )


def test_no_stored_byte_of_a_kafka_workflow_holds_the_secret_from_the_client_config(
    kafka: KafkaBroker,
    topic: str,
    group_id: str,
    emit: Emitter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DURABLY_KAFKA_CLIENT_CONFIG", json.dumps({"sasl.password": SECRET}))
    storage = str(tmp_path / "storage")
    stored = _run_an_event_workflow(storage, "secretive", b"paid", kafka, topic, group_id, emit)
    assert [key for key, value in stored.items() if SECRET.encode() in value] == []


def test_an_encrypted_kafka_workflow_stores_no_event_payload_in_clear_and_reads_it_back(
    kafka: KafkaBroker,
    topic: str,
    group_id: str,
    emit: Emitter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The codec wraps every record, including the event a Kafka listener checkpoints.
    key = base64.b64encode(hashlib.sha256(b"kafka test key").digest()).decode()
    monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", f"k1:{key}")
    payload = b"card-4242-paid"
    stored = _run_an_event_workflow(
        str(tmp_path / "storage"), "encrypted", payload, kafka, topic, group_id, emit
    )
    assert all(value.startswith(b"DRBE") for value in stored.values())
    assert [key for key, value in stored.items() if payload in value] == []
    assert workflow.get_output("encrypted") == payload
