"""A listener waiting while its broker restarts still gets the message, exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_support import WAIT, Emitter, create_topic, wait_for_member
from servers.kafka import KafkaBroker

from durably_kafka import KafkaEvent, KafkaEventListener


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test alone, since the test stops and starts it."""
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_event_arrives_once_when_the_broker_restarts_while_a_listener_waits(own_broker: KafkaBroker) -> None:
    servers = own_broker.bootstrap_servers
    topic = create_topic(servers)
    group_id = "restart-group"

    def poll() -> KafkaEvent:
        listener = KafkaEventListener()
        coroutine = listener.poll_for_event(topic, bootstrap_servers=servers, group_id=group_id, timeout=WAIT)
        return asyncio.run(coroutine)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poll)
        wait_for_member(servers, group_id)
        own_broker.restart()
        assert not waiting.done()
        Emitter(servers, topic)("sent after the restart")
        event = waiting.result(timeout=WAIT + 30)
    assert event.value == b"sent after the restart"
    asyncio.run(KafkaEventListener().event_checkpointed(event))
    Emitter(servers, topic)("next")
    assert poll().value == b"next"
