"""Helpers for the durably-kafka tests: topics, producing, watching consumer groups, child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "kafka_child.py"
#: SASL/PLAIN user of the session broker's SASL listener.
SASL_USER, SASL_PASSWORD = "alice", "alice-secret-7f3e"
#: Short sessions, so the group drops a SIGKILLed consumer after seconds instead of 45.
FAST_SESSION = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}
#: Bound on every wait in these tests; generous for a loaded 2-core CI machine.
WAIT = 120.0


def create_topic(bootstrap_servers: str, partitions: int = 1) -> str:
    topic = f"t-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(WAIT)
    deadline = time.monotonic() + WAIT
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) < partitions:
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no metadata after {WAIT}s")
        time.sleep(0.1)
    return topic


class Emitter:
    """Produces messages to one topic and waits for the broker's acknowledgement of each."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "linger.ms": 0})

    def __call__(
        self,
        value: str | bytes,
        key: str | bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> bytes:
        data = value.encode() if isinstance(value, str) else value
        errors: list[Any] = []
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        self.producer.produce(
            self.topic,
            value=data,
            key=key,
            headers=headers,
            on_delivery=lambda err, _msg: errors.append(err),
            **extra,
        )
        if self.producer.flush(WAIT) != 0 or errors != [None]:
            raise RuntimeError(f"producing to {self.topic} failed: {errors}")
        return data


def group_members(bootstrap_servers: str, group_id: str) -> list[Any]:
    """The live members of a consumer group, as the broker describes them."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        description = admin.describe_consumer_groups([group_id], request_timeout=10)[group_id].result(15)
    except Exception:
        return []
    return list(description.members)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_member(bootstrap_servers: str, group_id: str, timeout: float = WAIT) -> list[Any]:
    """Wait until the group has a member that was assigned partitions (it is really consuming)."""
    return wait_for(
        lambda: [m for m in group_members(bootstrap_servers, group_id) if m.assignment.topic_partitions],
        f"a member of group {group_id} with partitions",
        timeout,
    )


def start_child(mode: str, spec: dict[str, Any], tmp_path: Path) -> subprocess.Popen[str]:
    """Start ``kafka_child.py <mode>`` without waiting for it (to SIGKILL it from the test)."""
    spec_path = tmp_path / f"{mode}-{uuid.uuid4().hex[:8]}.json"
    spec_path.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, str(CHILD_SCRIPT), mode, str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def run_child(
    mode: str, spec: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``kafka_child.py <mode>`` with a JSON spec in another Python process, bounded in time."""
    spec_path = tmp_path / f"{mode}-{uuid.uuid4().hex[:8]}.json"
    spec_path.write_text(json.dumps(spec))
    return subprocess.run(
        [sys.executable, str(CHILD_SCRIPT), mode, str(spec_path)],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
