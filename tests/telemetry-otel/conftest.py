"""Fixtures for durably-otel: in-memory providers in this process, a real OTLP/HTTP receiver, and a Ray
cluster whose every process reports, through the SDK's OTEL_* variables, to both files and the receiver."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:  # for `servers.*` when tests/ is not already on sys.path
    sys.path.insert(0, str(TESTS_DIR))
sys.path.insert(0, str(Path(__file__).parent))

import cloudpickle  # noqa: E402
import otel_steps  # noqa: E402
from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from servers.otlp_receiver import OtlpReceiver  # noqa: E402

cloudpickle.register_pickle_by_value(otel_steps)

WORKER_SITE = Path(__file__).parent / "worker_site"
T = TypeVar("T")

# The application's providers of this (test) process: set once, as an application would.
SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader(
    preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
)
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_tracer_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    """Poll ``probe`` until it returns something truthy (telemetry is exported in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Recorded:
    """What this process's in-memory exporter and reader received since the test began."""

    def __init__(self) -> None:
        self._collected: list[Any] = []

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [span for span in SPANS.get_finished_spans() if name is None or span.name == name]

    def one_span(self, name: str) -> ReadableSpan:
        found = self.spans(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[span.name for span in self.spans()]}"
        return found[0]

    def points(self, metric: str) -> list[Any]:
        """Data points of ``metric`` recorded since the test began (delta temporality: only this test's)."""
        data = METRICS.get_metrics_data()
        if data is not None:
            self._collected.extend(
                found
                for resource_metrics in data.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for found in scope_metrics.metrics
            )
        return [
            point for found in self._collected if found.name == metric for point in found.data.data_points
        ]


@pytest.fixture
def recorded() -> Recorded:
    SPANS.clear()
    METRICS.get_metrics_data()  # drop what earlier tests left (delta temporality)
    return Recorded()


@pytest.fixture
def local_workflow(tmp_path: Path) -> Any:
    """durably on the local executor (steps on threads of this process), on fresh file storage."""
    from durably import workflow

    workflow.init(storage=str(tmp_path / "storage"), executor="local")
    return workflow


# -- the Ray cluster and what its processes export ---------------------------------------------------
@pytest.fixture(scope="session")
def otlp_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(tmp_path_factory.mktemp("otlp-receiver"))
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def worker_telemetry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-telemetry")


@pytest.fixture(scope="session")
def ray_node_env(worker_telemetry_dir: Path, otlp_receiver: OtlpReceiver) -> dict[str, str]:
    """Only OTEL_* variables: no process of the cluster sets a provider, durably-otel builds them."""
    return {
        "PYTHONPATH": str(WORKER_SITE),
        "DURABLY_OTEL_TEST_DIR": str(worker_telemetry_dir),
        "OTEL_SERVICE_NAME": "durably-otel-tests",
        "OTEL_TRACES_EXPORTER": "durably_test_file,otlp",
        "OTEL_METRICS_EXPORTER": "durably_test_file,otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        # Ray gives a starting node 30 s to register, which a loaded machine can miss.
        "RAY_raylet_start_wait_time_s": "180",
    }


class WorkerTelemetry:
    """Spans and metrics that the cluster's processes wrote through the test-only file exporters."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def spans(self) -> list[dict[str, Any]]:
        """Every span exported so far, as the SDK's JSON, each with ``"pid"``: the process that made it."""
        found = []
        for path in sorted(self.folder.glob("spans-*.jsonl")):
            pid = int(path.stem.split("-")[1])
            for line in path.read_text().splitlines():
                if line.endswith("}"):  # a line being written has no closing brace yet
                    found.append({**json.loads(line), "pid": pid})
        return found

    def spans_of(self, workflow_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until ``count`` spans with this workflow id were exported, and return them."""

        def probe() -> list[dict[str, Any]] | None:
            spans = [
                span for span in self.spans() if span["attributes"].get("durably.workflow.id") == workflow_id
            ]
            return spans if len(spans) >= count else None

        return eventually(probe, f"{count} spans of workflow {workflow_id!r}")

    def counter_total(self, metric: str, attributes: dict[str, Any]) -> float:
        """The sum over processes of the latest cumulative value of a counter's matching data point."""
        total = 0.0
        for path in self.folder.glob("metrics-*.jsonl"):
            lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
            if not lines:
                continue
            for resource_metrics in json.loads(lines[-1])["resource_metrics"]:
                for scope_metrics in resource_metrics["scope_metrics"]:
                    for found in scope_metrics["metrics"]:
                        if found["name"] != metric:
                            continue
                        for point in found["data"]["data_points"]:
                            if all(point["attributes"].get(k) == v for k, v in attributes.items()):
                                total += point["value"]
        return total


@pytest.fixture
def ray_workflow(ray_cluster: Any, tmp_path: Path) -> Any:
    """durably on the ray executor of the session's cluster, on fresh file storage."""
    from durably import workflow

    workflow.init(storage=str(tmp_path / "storage"), executor="ray")
    return workflow


@pytest.fixture(scope="session")
def worker_telemetry(worker_telemetry_dir: Path) -> WorkerTelemetry:
    return WorkerTelemetry(worker_telemetry_dir)
