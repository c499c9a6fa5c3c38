"""A real OTLP/HTTP receiver on 127.0.0.1, built on the official protobuf definitions (opentelemetry-proto).

Run as a program it serves ``POST /v1/traces`` and ``POST /v1/metrics`` (binary protobuf, plain
or gzip) and appends each request, decoded to JSON, as one line to a file. ``OtlpReceiver``
starts it in its own process on a free port and stops it by PID; tests read what it received.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from servers._process import ServerProcess, free_port


def _decoders() -> dict[str, tuple[Any, Any]]:
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    return {
        "/v1/traces": (
            trace_service_pb2.ExportTraceServiceRequest,
            trace_service_pb2.ExportTraceServiceResponse,
        ),
        "/v1/metrics": (
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse,
        ),
    }


def serve(port: int, out: Path) -> None:
    from google.protobuf.json_format import MessageToDict

    decoders = _decoders()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            decoder = decoders.get(self.path)
            if decoder is None:
                self.send_error(404, f"no OTLP signal at {self.path}")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                request = decoder[0].FromString(body)
            except Exception as error:  # a malformed request is the client's error, not ours
                self.send_error(400, f"not an OTLP protobuf request: {error}")
                return
            line = json.dumps({"path": self.path, "request": MessageToDict(request)})
            with lock, out.open("a") as file:
                file.write(line + "\n")
            reply = decoder[1]().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class OtlpReceiver:
    """The receiver in a child process; ``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.out = folder / "received.jsonl"
        self.out.touch()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = ServerProcess(
            "otlp-receiver",
            [sys.executable, __file__, "--port", str(self.port), "--out", str(self.out)],
            folder / "otlp-receiver.log",
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        self.process.wait_for_port(self.port)

    def requests(self, path: str) -> Iterator[dict[str, Any]]:
        """Every request received so far at ``path`` (``/v1/traces`` or ``/v1/metrics``), decoded."""
        for line in self.out.read_text().splitlines():
            record = json.loads(line)
            if record["path"] == path:
                yield record["request"]

    def spans(self) -> list[dict[str, Any]]:
        """Every span received so far, each with its resource's attributes under ``"resource"``."""
        found = []
        for request in self.requests("/v1/traces"):
            for resource_spans in request.get("resourceSpans", []):
                resource = resource_spans.get("resource", {})
                for scope_spans in resource_spans.get("scopeSpans", []):
                    for span in scope_spans.get("spans", []):
                        found.append({**span, "resource": resource})
        return found

    def metric_names(self) -> set[str]:
        return {
            metric["name"]
            for request in self.requests("/v1/metrics")
            for resource_metrics in request.get("resourceMetrics", [])
            for scope_metrics in resource_metrics.get("scopeMetrics", [])
            for metric in scope_metrics.get("metrics", [])
        }

    def stop(self) -> None:
        self.process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    serve(arguments.port, arguments.out)
