"""KafkaEvent: one consumed Kafka message as a plain, picklable value that durably can checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message


@dataclass(frozen=True)
class KafkaEvent:
    """A Kafka message, plus what is needed to commit its offset later from any process.

    ``key``, ``value`` and header values are the raw bytes from Kafka (``None`` when absent);
    ``timestamp`` is in milliseconds since the epoch (``None`` when the message has none).
    ``group_id``, ``bootstrap_servers`` and ``client_config`` (without secrets) say which consumer
    group to commit for; ``commit_offsets`` holds ``(partition, next offset)`` pairs: this message's
    and those of the non-matching messages skipped before it.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None
    group_id: str = ""
    bootstrap_servers: str = ""
    client_config: tuple[tuple[str, Any], ...] = ()
    commit_offsets: tuple[tuple[int, int], ...] = ()

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, or ``None``."""
        for header_name, value in self.headers:
            if header_name == name:
                return value
        return None

    def text(self, encoding: str = "utf-8") -> str | None:
        """The value decoded as text (``None`` for a tombstone)."""
        return None if self.value is None else self.value.decode(encoding)

    @classmethod
    def from_message(cls, message: Message, **consumer: Any) -> KafkaEvent:
        kind, stamp = message.timestamp()
        return cls(
            topic=str(message.topic()),
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            key=_as_bytes(message.key()),
            value=_as_bytes(message.value()),
            headers=_headers_of(message),
            timestamp=None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
            **consumer,
        )


def _as_bytes(data: str | bytes | None) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    return data.encode()


def _headers_of(message: Any) -> tuple[tuple[str, bytes | None], ...]:
    """A message's headers as (name, value) pairs; the client types them loosely."""
    pairs: list[Any] = list(message.headers() or [])
    return tuple((str(pair[0]), _as_bytes(pair[1])) for pair in pairs)
