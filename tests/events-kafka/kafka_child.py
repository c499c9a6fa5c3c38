"""A separate process for the crash tests: ``python kafka_child.py MODE SPEC.json``.

Modes: ``poll`` (wait for one event, optionally checkpoint it, write it to a file, then die with
``os._exit`` without any cleanup), ``checkpoint`` (checkpoint a stored event on a new listener),
``wait`` (wait forever, for the test to SIGKILL), ``trigger`` (run a KafkaWorkflowTrigger that can
die with ``os._exit`` right after its N-th workflow was started, before the offset is committed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import cloudpickle

from durably_kafka import KafkaEvent, KafkaEventListener, KafkaWorkflowTrigger

#: Exit code of a deliberate crash, so the test can tell it from an error.
CRASH_EXIT = 17


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def poll(spec: dict[str, Any]) -> None:
    listener = KafkaEventListener()
    event = asyncio.run(
        listener.poll_for_event(
            spec["topic"],
            bootstrap_servers=spec["bootstrap_servers"],
            group_id=spec["group_id"],
            timeout=spec.get("timeout", 120),
            **spec.get("client_config", {}),
        )
    )
    if spec.get("checkpoint"):
        asyncio.run(listener.event_checkpointed(event))
    write_atomically(Path(spec["out"]), cloudpickle.dumps(event))
    os._exit(CRASH_EXIT)  # a crash: no interpreter shutdown, nothing flushed or closed


def checkpoint(spec: dict[str, Any]) -> None:
    event = cloudpickle.loads(Path(spec["event"]).read_bytes())
    asyncio.run(KafkaEventListener().event_checkpointed(event))


def trigger(spec: dict[str, Any]) -> None:
    from durably import workflow

    workflow.init(storage=spec["storage"], executor="local")
    effects = Path(spec["effects"])
    started_log = Path(spec["started_log"])

    @workflow.step
    def handle(value: bytes, offset: int) -> str:
        (effects / f"{offset}.{uuid.uuid4().hex}").write_bytes(value)
        return value.decode().upper()

    handles: list[Any] = []

    def on_started(event: KafkaEvent, workflow_id: str, handle_: Any) -> None:
        with open(started_log, "a") as log:
            log.write(workflow_id + "\n")
            log.flush()
            os.fsync(log.fileno())
        handles.append(handle_)
        if len(handles) == spec.get("crash_after"):
            handle_.result(timeout=120)  # the workflow is finished, its offset not yet committed
            os._exit(CRASH_EXIT)
        if event.value is not None and event.value.decode() == spec.get("stop_on_value"):
            runner.stop()

    runner = KafkaWorkflowTrigger(
        spec["topic"],
        bootstrap_servers=spec["bootstrap_servers"],
        group_id=spec["group_id"],
        make_workflow=lambda event: handle.step(event.value, event.offset),
        on_workflow_started=on_started,
        **spec.get("client_config", {}),
    )
    runner.run(timeout=spec.get("timeout", 120))
    for handle_ in handles:
        handle_.result(timeout=120)


if __name__ == "__main__":
    mode, spec_path = sys.argv[1], sys.argv[2]
    {"poll": poll, "wait": poll, "checkpoint": checkpoint, "trigger": trigger}[mode](
        json.loads(Path(spec_path).read_text())
    )
