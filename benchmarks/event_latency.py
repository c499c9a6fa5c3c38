"""Latency of one external event into a workflow: ``send_event`` -> the waiting step's consumer runs.

    python benchmarks/event_latency.py --executor local --count 50
    python benchmarks/event_latency.py --executor ray --count 50
    python benchmarks/event_latency.py --executor local --count 50 --poll-only   # no wake-up: storage polling

Each round starts a workflow ``stamp.step(wait_for_event(ExternalEvent, "go"))``, lets the wait
idle for ``--idle`` seconds (so the poll backoff reaches its cap), then sends the event and
measures from just before ``send_event`` to the time the consumer step recorded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from durably import workflow


@workflow.step
def stamp(_: Any) -> float:
    return time.time()


def _wait_running(workflow_id: str) -> None:
    deadline = time.monotonic() + 120
    while workflow.get_status(workflow_id) != workflow.WorkflowStatus.RUNNING:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workflow_id} did not start")
        time.sleep(0.01)


def _result(handle: Any) -> Any:
    if hasattr(handle, "result"):
        return handle.result(timeout=120)
    import ray

    return ray.get(handle, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds the wait idles before the send")
    parser.add_argument("--poll-only", action="store_true", help="disable the sender's wake-up call")
    parser.add_argument("--storage", default=None, help="storage URL (default: a fresh temporary folder)")
    parser.add_argument(
        "--ray-address", default="local", help="Ray cluster to join (default: start a new one)"
    )
    options = parser.parse_args()
    storage = options.storage or tempfile.mkdtemp(prefix="durably-latency-")
    ray_address = options.ray_address if options.executor == "ray" else None
    workflow.init(storage=storage, executor=options.executor, ray_address=ray_address)
    if options.poll_only:
        from durably.events import _external

        _external._wake = lambda *args: None  # type: ignore[assignment]
    latencies = []
    for round_ in range(options.count):
        workflow_id = f"latency-{round_}"
        handle = stamp.step(workflow.wait_for_event(workflow.ExternalEvent, "go")).run_async(
            workflow_id=workflow_id
        )
        _wait_running(workflow_id)
        time.sleep(options.idle)
        sent = time.time()
        workflow.send_event(workflow_id, "go", round_)
        latencies.append(_result(handle) - sent)
    latencies.sort()
    print(
        f"executor={options.executor} poll_only={options.poll_only} n={len(latencies)} "
        f"median={statistics.median(latencies) * 1000:.1f} ms "
        f"p90={latencies[int(len(latencies) * 0.9) - 1] * 1000:.1f} ms "
        f"min={latencies[0] * 1000:.1f} ms max={latencies[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
