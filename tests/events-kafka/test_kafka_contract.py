"""KafkaEventListener passes durably's EventListenerContract against a real broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kafka_support import Emitter

from durably.testing.events import EventArgs, EventListenerContract
from durably_kafka import KafkaEvent, KafkaEventListener


class TestKafkaEventListenerContract(EventListenerContract):
    @pytest.fixture
    def listener_factory(self) -> Callable[[], KafkaEventListener]:
        return KafkaEventListener

    @pytest.fixture
    def event_args(self, kafka: Any, topic: str, group_id: str) -> EventArgs:
        return (topic,), {"bootstrap_servers": kafka.bootstrap_servers, "group_id": group_id, "timeout": 100}

    @pytest.fixture
    def emit(self, emit: Emitter) -> Callable[[str], bytes]:
        return lambda payload: emit(payload)

    @pytest.fixture
    def payload_of(self) -> Callable[[KafkaEvent], bytes | None]:
        return lambda event: event.value
