"""Building confluent-kafka client configs: defaults, secrets from the environment, what may be stored."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

#: JSON object of client settings added to every client durably-kafka makes (the place for secrets).
CLIENT_CONFIG_ENV = "DURABLY_KAFKA_CLIENT_CONFIG"

#: Settings that are never written into a stored event: any key containing one of these words.
_SECRET_WORDS = ("password", "secret", "token", "credential", "oauthbearer.config", "key.pem", "private")

_DEFAULTS: dict[str, Any] = {
    # a new group sees messages produced before the workflow started waiting, instead of missing them
    "auto.offset.reset": "earliest",
}
# Offsets are committed by durably-kafka itself, at the moment the message is durably handled.
_FORCED: dict[str, Any] = {"enable.auto.commit": False, "enable.auto.offset.store": False}


# Errors that will not go away by waiting; everything else (broker down, rebalancing,
# coordinator moving) is retried by the client while we keep waiting.
_FATAL_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError._INVALID_ARG,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.INVALID_GROUP_ID,
    }
)

#: librdkafka's own log lines go here instead of straight to stderr.
client_logger = logging.getLogger("durably_kafka.client")


class KafkaConfigError(ValueError):
    """The client configuration was refused by the Kafka client (unknown key, invalid value)."""


class KafkaListenerError(RuntimeError):
    """Waiting for, or committing, a Kafka message failed in a way that waiting longer cannot fix."""


class ClientErrors:
    """Collects errors a client reports outside ``poll`` results (authentication, TLS, brokers down)."""

    def __init__(self, chained: Callable[[KafkaError], None] | None = None) -> None:
        self._chained = chained
        self._fatal: KafkaError | None = None
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        if is_fatal(error):
            with self._lock:
                self._fatal = self._fatal or error
        else:
            client_logger.debug("Kafka client reported %s; retrying", error.str())
        if self._chained is not None:
            self._chained(error)

    def raise_if_fatal(self, doing: str) -> None:
        with self._lock:
            error = self._fatal
        if error is not None:
            raise KafkaListenerError(f"Kafka error while {doing}: {error.str()}")


def is_fatal(error: KafkaError) -> bool:
    return bool(error.fatal()) or error.code() in _FATAL_ERRORS


def raise_if_fatal(error: KafkaError, doing: str) -> None:
    """Raise for an error that waiting cannot fix; log the others (the client retries them)."""
    if is_fatal(error):
        raise KafkaListenerError(f"Kafka error while {doing}: {error.str()}")
    client_logger.debug("Kafka reported %s while %s; still waiting", error.str(), doing)


# confluent-kafka's own Python settings, whose names really have underscores
_PYTHON_KEYS = frozenset(
    {"error_cb", "throttle_cb", "stats_cb", "oauth_cb", "on_commit", "on_delivery", "logger"}
)


def normalise_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """Accept Python-friendly ``security_protocol=...`` as well as ``"security.protocol"``."""
    return {key if key in _PYTHON_KEYS else key.replace("_", "."): value for key, value in config.items()}


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def storable(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The settings that may be kept in a stored event: no secrets, no callbacks, only plain values."""
    return tuple(
        sorted(
            (key, value)
            for key, value in config.items()
            if not is_secret(key) and isinstance(value, (str, int, float, bool))
        )
    )


def environment_config() -> dict[str, Any]:
    raw = os.environ.get(CLIENT_CONFIG_ENV)
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KafkaConfigError(
            f"{CLIENT_CONFIG_ENV} must hold a JSON object of Kafka settings: {exc}"
        ) from exc
    if not isinstance(config, dict):
        raise KafkaConfigError(f"{CLIENT_CONFIG_ENV} must hold a JSON object, got {type(config).__name__}")
    return normalise_keys(config)


def consumer_config(
    base: Mapping[str, Any], call: Mapping[str, Any], bootstrap_servers: str, group_id: str
) -> dict[str, Any]:
    """defaults < environment < listener/trigger constructor (``base``) < this call < forced settings."""
    return {
        **_DEFAULTS,
        **environment_config(),
        **base,
        **call,
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        **_FORCED,
    }


def make_consumer(config: Mapping[str, Any], purpose: str) -> tuple[Consumer, ClientErrors]:
    """A Consumer and the errors it reports, or a KafkaConfigError naming the refused setting."""
    errors = ClientErrors(config.get("error_cb"))
    try:
        consumer = Consumer({"logger": client_logger, **config, "error_cb": errors})
        return consumer, errors
    except (KafkaException, ValueError, TypeError) as exc:
        group = config.get("group.id")
        raise KafkaConfigError(
            f"invalid Kafka client configuration for {purpose} (group {group!r}, "
            f"bootstrap.servers {config.get('bootstrap.servers')!r}): {exc}"
        ) from exc
