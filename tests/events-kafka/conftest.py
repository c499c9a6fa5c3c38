"""Fixtures for durably-kafka: one real Kafka broker per session, a fresh topic and group per test."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:  # for `servers.*` when tests/ is not already on sys.path
    sys.path.insert(0, str(TESTS_DIR))

from kafka_support import SASL_PASSWORD, SASL_USER, Emitter, create_topic  # noqa: E402
from servers.kafka import KafkaBroker  # noqa: E402


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), sasl_users={SASL_USER: SASL_PASSWORD})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic(kafka: KafkaBroker) -> str:
    return create_topic(kafka.bootstrap_servers)


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def emit(kafka: KafkaBroker, topic: str) -> Emitter:
    return Emitter(kafka.bootstrap_servers, topic)
