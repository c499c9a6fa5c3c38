"""KafkaEventListener: a workflow waits for one Kafka message, committed only once checkpointed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from durably import EventListener
from durably_kafka._config import (
    CLIENT_CONFIG_ENV,
    ClientErrors,
    KafkaConfigError,
    KafkaListenerError,
    consumer_config,
    make_consumer,
    normalise_keys,
    raise_if_fatal,
    storable,
)
from durably_kafka._event import KafkaEvent

logger = logging.getLogger("durably_kafka")

#: How long one blocking ``poll`` may take, so that cancellation and timeouts are noticed soon.
POLL_INTERVAL = 0.2

# The group has live members, so the broker refuses a commit from a client outside it.
_NOT_A_MEMBER_ERRORS = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.FENCED_MEMBER_EPOCH,
    }
)

# Worth another try: the coordinator is loading, moving, or did not answer in time.
_RETRIED_ERRORS = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.REQUEST_TIMED_OUT,
    }
)

Predicate = Callable[[KafkaEvent], bool]


class KafkaEventListener(EventListener):
    """Waits for the next message on a topic for a consumer group; commits it once checkpointed.

    Use it as ``workflow.wait_for_event(KafkaEventListener, "orders", bootstrap_servers=...,
    group_id=...)``. The offset is committed only in :meth:`event_checkpointed`, so a crash before
    durably stored the event delivers the message again, and after the commit the group never sees
    it again. Secrets (``sasl.password`` and the like) are not stored in the event: give them to the
    constructor (``client_config=...``, in a subclass) or as a JSON object in the environment
    variable ``DURABLY_KAFKA_CLIENT_CONFIG`` of every process that runs workflows.
    """

    secret_hint = (
        f"put them in the JSON object of the environment variable {CLIENT_CONFIG_ENV} of every process "
        "that runs workflows (or pass client_config to the constructor of a subclass)"
    )

    def __init__(self, client_config: Mapping[str, Any] | None = None) -> None:
        self.client_config = normalise_keys(client_config or {})

    async def poll_for_event(  # type: ignore[override]
        self,
        topic: str,
        *,
        bootstrap_servers: str,
        group_id: str,
        key: str | bytes | None = None,
        predicate: Predicate | None = None,
        timeout: float | None = None,
        **client_config: Any,
    ) -> KafkaEvent:
        """Return the next message on ``topic`` for ``group_id`` (the first matching ``key``/``predicate``).

        Messages that do not match are skipped for this group: their offsets are committed together
        with the returned message's. ``client_config`` is passed to the Kafka client
        (``security_protocol="SASL_SSL"`` or ``**{"security.protocol": "SASL_SSL"}``). Raises
        ``TimeoutError`` when ``timeout`` seconds pass without a matching message.
        """
        call_config = normalise_keys(client_config)
        config = consumer_config(self.client_config, call_config, bootstrap_servers, group_id)
        wanted_key = key.encode() if isinstance(key, str) else key
        stop = threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            event = await asyncio.to_thread(
                self._wait, topic, config, storable(call_config), wanted_key, predicate, deadline, stop
            )
        finally:
            stop.set()  # the thread ends within POLL_INTERVAL when this task is cancelled
        if event is None:
            raise TimeoutError(
                f"no matching Kafka message on topic {topic!r} for group {group_id!r} within {timeout}s"
            )
        return event

    async def event_checkpointed(self, event: KafkaEvent) -> None:
        """Commit the event's offsets for its group (synchronously; never moves a group backwards)."""
        await asyncio.to_thread(commit_event, event, self.client_config)

    def _wait(
        self,
        topic: str,
        config: dict[str, Any],
        stored_config: tuple[tuple[str, Any], ...],
        key: bytes | None,
        predicate: Predicate | None,
        deadline: float | None,
        stop: threading.Event,
    ) -> KafkaEvent | None:
        doing = f"waiting on topic {topic!r} for group {config['group.id']!r}"
        consumer, errors = make_consumer(config, doing)
        origin = {
            "group_id": config["group.id"],
            "bootstrap_servers": config["bootstrap.servers"],
            "client_config": stored_config,
        }
        skipped: dict[int, int] = {}
        try:
            consumer.subscribe([topic])
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                message = consumer.poll(POLL_INTERVAL)
                errors.raise_if_fatal(doing)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    raise_if_fatal(error, doing)
                    continue
                event = KafkaEvent.from_message(message, **origin)
                if (key is None or event.key == key) and (predicate is None or predicate(event)):
                    offsets = {**skipped, event.partition: event.offset + 1}
                    return replace(event, commit_offsets=tuple(sorted(offsets.items())))
                skipped[event.partition] = event.offset + 1
            return None
        finally:
            # leaving the group at once lets the next waiter (or a re-poll after a crash) take over
            consumer.close()


def commit_event(event: KafkaEvent, base_config: Mapping[str, Any], timeout: float = 120.0) -> None:
    """Commit ``event.commit_offsets`` for ``event.group_id`` from a new, short-lived consumer.

    Only offsets ahead of what the group has committed are sent, so committing an old event again
    (durably replays ``event_checkpointed`` on resume) never re-delivers later messages. A group
    whose other members are alive refuses a commit from outside it; then the commit is made after
    joining the group.
    """
    if not event.commit_offsets:
        return
    config = consumer_config(base_config, dict(event.client_config), event.bootstrap_servers, event.group_id)
    purpose = f"committing {event.topic}[{event.partition}]@{event.offset} for group {event.group_id!r}"
    deadline = time.monotonic() + timeout
    try:
        consumer, errors = make_consumer(config, purpose)
    except KafkaConfigError as exc:
        raise KafkaConfigError(
            f"{exc} (secrets are not stored in events: give them to this process in {CLIENT_CONFIG_ENV} "
            "or to the listener's client_config)"
        ) from exc
    try:
        if _commit_ahead(consumer, errors, event, purpose, deadline):
            return
    finally:
        consumer.close()
    _commit_as_group_member(event, config, purpose, deadline)


def _commit_ahead(
    consumer: Consumer, errors: ClientErrors, event: KafkaEvent, purpose: str, deadline: float
) -> bool:
    """Commit the offsets the group has not reached yet; False if the group refuses an outsider."""
    wanted = [TopicPartition(event.topic, partition, offset) for partition, offset in event.commit_offsets]
    while True:
        errors.raise_if_fatal(purpose)
        try:
            committed = consumer.committed(
                [TopicPartition(event.topic, tp.partition) for tp in wanted], timeout=5
            )
            current = {tp.partition: tp.offset for tp in committed}
            ahead = [tp for tp in wanted if current.get(tp.partition, OFFSET_INVALID) < tp.offset]
            if not ahead:
                return True
            for result in consumer.commit(offsets=ahead, asynchronous=False) or []:
                if result.error is not None:
                    raise KafkaException(result.error)
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in _NOT_A_MEMBER_ERRORS:
                return False
            retriable = error.retriable() or error.code() in _RETRIED_ERRORS
            if not retriable or time.monotonic() > deadline:
                raise KafkaListenerError(f"Kafka refused {purpose}: {error.str()}") from exc
            time.sleep(0.2)


def _commit_as_group_member(event: KafkaEvent, config: dict[str, Any], purpose: str, deadline: float) -> None:
    """Join the group (any assignment will do: the broker checks membership, not ownership) and commit."""
    joined = threading.Event()
    consumer, errors = make_consumer(config, purpose)
    try:
        consumer.subscribe([event.topic], on_assign=lambda *_: joined.set())
        while time.monotonic() < deadline:
            message = consumer.poll(POLL_INTERVAL)
            errors.raise_if_fatal(purpose)
            failure = message.error() if message is not None else None
            if failure is not None:
                raise_if_fatal(failure, purpose)
            if joined.is_set() and _commit_ahead(consumer, errors, event, purpose, deadline):
                return
        raise KafkaListenerError(f"timed out {purpose}: could not join the group to commit")
    finally:
        consumer.close()
