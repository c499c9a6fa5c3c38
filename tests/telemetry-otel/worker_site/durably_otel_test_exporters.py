"""Test-only exporters that ship what a Ray worker produced to the test process, through files.

Every Ray process of the tests' cluster has this folder on its PYTHONPATH, so OpenTelemetry's
entry points find these exporters (see the dist-info beside this file) under the name
``durably_test_file``; ``OTEL_TRACES_EXPORTER``/``OTEL_METRICS_EXPORTER`` select them like any
exporter, and durably-otel builds the process's providers from those variables. Each process
appends to its own files in ``$DURABLY_OTEL_TEST_DIR``: one JSON span per line, and one JSON
snapshot of its (cumulative) metrics per export.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

FOLDER_ENV = "DURABLY_OTEL_TEST_DIR"
_lock = threading.Lock()


def _append(kind: str, lines: list[str]) -> None:
    path = Path(os.environ[FOLDER_ENV]) / f"{kind}-{os.getpid()}.jsonl"
    with _lock, path.open("a") as file:
        file.write("".join(line + "\n" for line in lines))


class FileSpanExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _append("spans", [span.to_json(indent=None) for span in spans])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class FileMetricExporter(MetricExporter):
    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        _append("metrics", [metrics_data.to_json(indent=None)])
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass
