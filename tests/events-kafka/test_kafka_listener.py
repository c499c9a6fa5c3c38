"""KafkaEventListener against a real broker: delivery, filters, client config, secrets and crashes."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from kafka_support import (
    FAST_SESSION,
    SASL_PASSWORD,
    SASL_USER,
    WAIT,
    Emitter,
    create_topic,
    run_child,
    start_child,
    wait_for_member,
)

from durably_kafka import (
    CLIENT_CONFIG_ENV,
    KafkaConfigError,
    KafkaEvent,
    KafkaEventListener,
    KafkaListenerError,
)

CRASH_EXIT = 17


def poll(kafka: Any, topic: str, group_id: str, **kwargs: Any) -> KafkaEvent:
    kwargs.setdefault("timeout", WAIT)
    listener = kwargs.pop("listener", None) or KafkaEventListener()
    coroutine = listener.poll_for_event(
        topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group_id, **kwargs
    )
    return asyncio.run(asyncio.wait_for(coroutine, WAIT + 30))  # type: ignore[no-any-return]


def checkpoint(event: KafkaEvent, listener: KafkaEventListener | None = None) -> None:
    asyncio.run(asyncio.wait_for((listener or KafkaEventListener()).event_checkpointed(event), WAIT))


def is_picklable_predicate(event: KafkaEvent) -> bool:
    return event.value is not None and json.loads(event.value)["amount"] > 100


def test_message_is_delivered_with_its_key_value_headers_and_position(
    kafka: Any, topic: str, group_id: str, emit: Emitter
) -> None:
    emit("hello", key="k1", headers=[("trace", b"abc")])
    event = poll(kafka, topic, group_id)
    assert (event.topic, event.partition, event.offset) == (topic, 0, 0)
    assert (event.key, event.value, event.text()) == (b"k1", b"hello", "hello")
    assert event.header("trace") == b"abc"
    assert event.timestamp is not None and event.timestamp > 0
    assert (event.group_id, event.bootstrap_servers) == (group_id, kafka.bootstrap_servers)


def test_key_filter_returns_the_first_message_with_that_key_and_skips_the_others(
    kafka: Any, topic: str, group_id: str, emit: Emitter
) -> None:
    for key, value in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")]:
        emit(value, key=key)
    event = poll(kafka, topic, group_id, key="a")
    assert (event.key, event.value) == (b"a", b"1")
    checkpoint(event)
    event = poll(kafka, topic, group_id, key=b"c")
    assert (event.key, event.value) == (b"c", b"4")
    checkpoint(event)
    emit("5", key="b")
    # "b"/"2" and "a"/"3" were skipped by the second wait and committed along with "c"
    assert poll(kafka, topic, group_id).value == b"5"


def test_predicate_selects_the_message_and_is_stored_with_the_wait(
    kafka: Any, topic: str, group_id: str, emit: Emitter
) -> None:
    emit(json.dumps({"amount": 5}))
    emit(json.dumps({"amount": 500}))
    predicate = cloudpickle.loads(cloudpickle.dumps(is_picklable_predicate))
    event = poll(kafka, topic, group_id, predicate=predicate)
    assert json.loads(event.value or b"") == {"amount": 500}
    assert event.commit_offsets == ((0, 2),)


def test_without_a_matching_message_the_wait_times_out(
    kafka: Any, topic: str, group_id: str, emit: Emitter
) -> None:
    emit("not it", key="other")
    with pytest.raises(TimeoutError, match=topic):
        poll(kafka, topic, group_id, key="wanted", timeout=3)


def test_client_config_reaches_the_consumer(kafka: Any, topic: str, group_id: str, emit: Emitter) -> None:
    listener = KafkaEventListener()
    coroutine = listener.poll_for_event(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group_id,
        timeout=WAIT,
        client_id="durably-cfg-test",
    )

    async def wait_and_look() -> tuple[KafkaEvent, list[Any]]:
        task = asyncio.ensure_future(coroutine)
        members = await asyncio.to_thread(wait_for_member, kafka.bootstrap_servers, group_id)
        emit("seen")
        return await asyncio.wait_for(task, WAIT), members

    event, members = asyncio.run(wait_and_look())
    assert event.value == b"seen"
    assert [member.client_id for member in members] == ["durably-cfg-test"]
    assert ("client.id", "durably-cfg-test") in event.client_config


def test_invalid_client_config_fails_with_a_clear_error(kafka: Any, topic: str, group_id: str) -> None:
    with pytest.raises(KafkaConfigError, match=r"security\.protocol") as caught:
        poll(kafka, topic, group_id, security_protocol="carrier-pigeon")
    assert group_id in str(caught.value)


def test_wrong_password_is_reported_instead_of_waiting_forever(kafka: Any, group_id: str) -> None:
    topic = create_topic(kafka.bootstrap_servers)
    listener = KafkaEventListener()
    coroutine = listener.poll_for_event(
        topic,
        bootstrap_servers=kafka.sasl_bootstrap_servers,
        group_id=group_id,
        timeout=WAIT,
        **{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"},
        sasl_username=SASL_USER,
        sasl_password="wrong",
    )
    with pytest.raises(KafkaListenerError, match=r"(?i)authentication"):
        asyncio.run(asyncio.wait_for(coroutine, WAIT + 30))


def test_secrets_stay_out_of_the_event_and_come_from_the_environment_when_committing(
    kafka: Any, group_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = create_topic(kafka.bootstrap_servers)
    emit = Emitter(kafka.bootstrap_servers, topic)
    emit("first")
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": SASL_USER}
    monkeypatch.setenv(CLIENT_CONFIG_ENV, json.dumps({"sasl.password": SASL_PASSWORD}))
    event = asyncio.run(
        asyncio.wait_for(
            KafkaEventListener().poll_for_event(
                topic, bootstrap_servers=kafka.sasl_bootstrap_servers, group_id=group_id, timeout=WAIT, **sasl
            ),
            WAIT + 30,
        )
    )
    stored = cloudpickle.dumps(event)
    assert SASL_PASSWORD.encode() not in stored
    assert dict(event.client_config)["sasl.username"] == SASL_USER
    (tmp_path / "event.pickle").write_bytes(stored)

    without_secret = run_child(
        "checkpoint", {"event": str(tmp_path / "event.pickle")}, tmp_path, env={CLIENT_CONFIG_ENV: ""}
    )
    assert without_secret.returncode != 0
    assert "KafkaConfigError" in without_secret.stderr
    assert CLIENT_CONFIG_ENV in without_secret.stderr

    with_secret = run_child("checkpoint", {"event": str(tmp_path / "event.pickle")}, tmp_path)
    assert with_secret.returncode == 0, with_secret.stderr
    emit("second")
    assert poll(kafka, topic, group_id).value == b"second"


def test_crash_before_checkpoint_delivers_the_message_again(
    kafka: Any, topic: str, group_id: str, emit: Emitter, tmp_path: Path
) -> None:
    emit("important")
    spec = {"topic": topic, "bootstrap_servers": kafka.bootstrap_servers, "group_id": group_id}
    child = run_child("poll", {**spec, "out": str(tmp_path / "seen.pickle")}, tmp_path)
    assert child.returncode == CRASH_EXIT, child.stderr
    seen_by_crashed = cloudpickle.loads((tmp_path / "seen.pickle").read_bytes())
    again = poll(kafka, topic, group_id)
    assert again == seen_by_crashed
    assert again.value == b"important"


def test_crash_after_checkpoint_does_not_deliver_the_message_again(
    kafka: Any, topic: str, group_id: str, emit: Emitter, tmp_path: Path
) -> None:
    emit("once")
    spec = {"topic": topic, "bootstrap_servers": kafka.bootstrap_servers, "group_id": group_id}
    child = run_child("poll", {**spec, "out": str(tmp_path / "seen.pickle"), "checkpoint": True}, tmp_path)
    assert child.returncode == CRASH_EXIT, child.stderr
    assert cloudpickle.loads((tmp_path / "seen.pickle").read_bytes()).value == b"once"
    emit("next")
    assert poll(kafka, topic, group_id).value == b"next"


def test_listener_killed_while_waiting_loses_no_message(
    kafka: Any, topic: str, group_id: str, emit: Emitter, tmp_path: Path
) -> None:
    spec = {
        "topic": topic,
        "bootstrap_servers": kafka.bootstrap_servers,
        "group_id": group_id,
        "client_config": FAST_SESSION,
        "out": str(tmp_path / "never.pickle"),
    }
    child = start_child("wait", spec, tmp_path)
    try:
        wait_for_member(kafka.bootstrap_servers, group_id)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    emit("after the crash")
    assert poll(kafka, topic, group_id, **FAST_SESSION).value == b"after the crash"
    assert not (tmp_path / "never.pickle").exists()
