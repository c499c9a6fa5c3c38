"""durably finds the Kafka listener through the "durably" entry-point group of the installed package."""

from __future__ import annotations

from durably._plugins import PluginRegistry
from durably_kafka import KafkaEventListener


def test_durably_discovers_the_kafka_listener_by_name() -> None:
    registry = PluginRegistry()
    assert registry.event_listeners()["kafka"] is KafkaEventListener
    [info] = [plugin for plugin in registry.plugins if plugin.module == "durably_kafka.plugin"]
    assert (info.distribution, info.error) == ("durably-kafka", None)
