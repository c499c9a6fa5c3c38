"""durably-kafka: wait for Kafka messages in durably workflows, or start one workflow per message."""

from durably_kafka._config import CLIENT_CONFIG_ENV, KafkaConfigError, KafkaListenerError
from durably_kafka._event import KafkaEvent
from durably_kafka._listener import KafkaEventListener
from durably_kafka._trigger import KafkaWorkflowTrigger

__all__ = [
    "CLIENT_CONFIG_ENV",
    "KafkaConfigError",
    "KafkaEvent",
    "KafkaEventListener",
    "KafkaListenerError",
    "KafkaWorkflowTrigger",
]
