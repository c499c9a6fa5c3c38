"""Building confluent-kafka client configs: defaults, secrets from the environment, what may be stored."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException

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


class KafkaConfigError(ValueError):
    """The client configuration was refused by the Kafka client (unknown key, invalid value)."""


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


def make_consumer(config: Mapping[str, Any], purpose: str) -> Consumer:
    """A Consumer, or a KafkaConfigError that says which client refused which setting."""
    try:
        return Consumer(dict(config))
    except (KafkaException, ValueError, TypeError) as exc:
        group = config.get("group.id")
        raise KafkaConfigError(
            f"invalid Kafka client configuration for {purpose} (group {group!r}, "
            f"bootstrap.servers {config.get('bootstrap.servers')!r}): {exc}"
        ) from exc
