"""KafkaWorkflowTrigger: one durably workflow per Kafka message, once per (topic, partition, offset)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from durably import workflow
from durably_kafka._config import (
    KafkaListenerError,
    consumer_config,
    make_consumer,
    normalise_keys,
    raise_if_fatal,
    storable,
)
from durably_kafka._event import KafkaEvent
from durably_kafka._listener import POLL_INTERVAL

logger = logging.getLogger("durably_kafka")

MakeWorkflow = Callable[[KafkaEvent], "workflow.Workflow[Any]"]
WorkflowIdFor = Callable[[KafkaEvent], str]
OnStarted = Callable[[KafkaEvent, str, Any], None]


class KafkaWorkflowTrigger:
    """Consumes ``topics`` with consumer group ``group_id`` and starts ``make_workflow(event)`` per message.

    Each message's workflow id is ``workflow_id_for(event)`` (by default
    ``"{prefix}-{topic}-{partition}-{offset}"``, the prefix defaulting to the group id). A message's
    offset is committed only after its workflow was created in durably's storage, and a message
    whose workflow already exists is not started again, so after a crash of the consuming process
    the re-delivered messages start nothing twice. ``workflow.init(...)`` must have been called in
    the process that runs the trigger. Workflows that were running in a process that crashed are
    left RESUMABLE; continue them with ``workflow.resume_all()``.
    """

    def __init__(
        self,
        topics: str | Sequence[str],
        *,
        bootstrap_servers: str,
        group_id: str,
        make_workflow: MakeWorkflow,
        workflow_id_for: WorkflowIdFor | None = None,
        workflow_id_prefix: str | None = None,
        on_workflow_started: OnStarted | None = None,
        client_config: Mapping[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.group_id = group_id
        self.make_workflow = make_workflow
        prefix = group_id if workflow_id_prefix is None else workflow_id_prefix
        self.workflow_id_for = workflow_id_for or (
            lambda event: f"{prefix}-{event.topic}-{event.partition}-{event.offset}"
        )
        self.on_workflow_started = on_workflow_started
        call_config = normalise_keys(config)
        self._stored_config = storable(call_config)
        self._config = consumer_config(
            normalise_keys(client_config or {}), call_config, bootstrap_servers, group_id
        )
        make_consumer(self._config, "KafkaWorkflowTrigger")[0].close()  # a bad setting fails here, not later
        self._stop = threading.Event()

    def stop(self) -> None:
        """Make ``run`` return after the message it is handling (safe from other threads and callbacks)."""
        self._stop.set()

    def run(self, *, max_messages: int | None = None, timeout: float | None = None) -> int:
        """Consume until ``stop()``, ``max_messages`` messages were handled, or ``timeout`` seconds passed.

        Returns how many workflows this call started (messages whose workflow existed are handled
        but not counted).
        """
        self._stop.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        handled = started = 0
        doing = f"consuming {self.topics} for group {self.group_id!r}"
        consumer, errors = make_consumer(self._config, doing)
        origin = {
            "group_id": self.group_id,
            "bootstrap_servers": self._config["bootstrap.servers"],
            "client_config": self._stored_config,
        }
        try:
            consumer.subscribe(self.topics)
            while not self._stop.is_set() and (max_messages is None or handled < max_messages):
                if deadline is not None and time.monotonic() > deadline:
                    break
                message = consumer.poll(POLL_INTERVAL)
                errors.raise_if_fatal(doing)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    raise_if_fatal(error, doing)
                    continue
                event = KafkaEvent.from_message(message, **origin)
                started += self._start_once(event)
                self._commit(consumer, event)
                handled += 1
        finally:
            consumer.close()
        return started

    def _start_once(self, event: KafkaEvent) -> int:
        """Create and start the message's workflow unless it exists; 1 if it was started here."""
        workflow_id = self.workflow_id_for(event)
        try:
            workflow.get_status(workflow_id)
        except workflow.WorkflowNotFoundError:
            pass
        else:
            logger.info("workflow %s for %s[%d]@%d exists; not started again", workflow_id, *_where(event))
            return 0
        metadata = {"kafka": {"topic": event.topic, "partition": event.partition, "offset": event.offset}}
        # run_async returns once the workflow is in storage; its steps go on in the background
        handle = self.make_workflow(event).run_async(workflow_id=workflow_id, metadata=metadata)
        if self.on_workflow_started is not None:
            self.on_workflow_started(event, workflow_id, handle)
        return 1

    def _commit(self, consumer: Any, event: KafkaEvent) -> None:
        offsets = [TopicPartition(event.topic, event.partition, event.offset + 1)]
        for _attempt in range(20):
            try:
                results = consumer.commit(offsets=offsets, asynchronous=False) or []
            except KafkaException as exc:
                error = exc.args[0]
                # after a rebalance, the message is re-delivered to the partition's new owner,
                # which finds its workflow and skips it: nothing is lost by not committing here
                if not error.retriable():
                    logger.warning("could not commit %s[%d]@%d: %s", *_where(event), error.str())
                    return
                time.sleep(0.5)
                continue
            for result in results:
                if result.error is not None:
                    raise KafkaListenerError(
                        f"committing {event.topic}[{event.partition}] failed: {result.error}"
                    )
            return
        raise KafkaListenerError(f"committing {event.topic}[{event.partition}]@{event.offset} kept failing")


def _where(event: KafkaEvent) -> tuple[str, int, int]:
    return event.topic, event.partition, event.offset
