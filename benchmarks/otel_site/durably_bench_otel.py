"""Bench-only exporters: the CPU work of an OTLP/HTTP export (protobuf encoding), with nothing sent.

The ``durably[ray+otel]`` and ``durably[local+otel]`` contenders select them by name
(``OTEL_TRACES_EXPORTER=otlp_encode_only``): this folder is on the ``PYTHONPATH`` of the bench's
driver and so of every Ray process it starts, and the dist-info beside this file declares the
entry points the OpenTelemetry SDK (and durably-otel) find exporters by. Each export does what
``OTLPSpanExporter.export`` / ``OTLPMetricExporter.export`` of opentelemetry-exporter-otlp-proto-http
do before the HTTP request (``encode_*(...).SerializePartialToString()``) and keeps the byte count.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class EncodeOnlySpanExporter(SpanExporter):
    """Encodes each batch as the OTLP request body and drops it; counts spans and bytes."""

    def __init__(self) -> None:
        self.spans = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_spans(spans).SerializePartialToString()
        with self._lock:
            self.spans += len(spans)
            self.bytes += len(body)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class EncodeOnlyMetricExporter(MetricExporter):
    """Encodes each collection as the OTLP request body and drops it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.bytes += len(encode_metrics(metrics_data).SerializePartialToString())
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass
