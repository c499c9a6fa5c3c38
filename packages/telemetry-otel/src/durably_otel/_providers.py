"""Which providers durably's telemetry reports to: the application's global ones, or ones built from OTEL_*.

Like an OpenTelemetry instrumentation, durably-otel never chooses exporters. A process whose
application set a global TracerProvider or MeterProvider reports there. A process with neither
(a Ray worker, durably's engine actor) builds SDK providers from the SDK's own variables when
``OTEL_TRACES_EXPORTER`` or ``OTEL_METRICS_EXPORTER`` names exporters, and installs them as the
global ones, as ``opentelemetry-instrument`` would. Otherwise telemetry stays off, and each hook
costs one check.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_globals

TRACES_EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER_ENV = "OTEL_METRICS_EXPORTER"
SDK_DISABLED_ENV = "OTEL_SDK_DISABLED"
#: The API's own variables naming a provider to load (on the first ``get_*_provider()`` call).
PROVIDER_ENVS = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")

_ENTRY_POINT_GROUPS = {
    TRACES_EXPORTER_ENV: "opentelemetry_traces_exporter",
    METRICS_EXPORTER_ENV: "opentelemetry_metrics_exporter",
}
_PROTOCOL_ENVS = {
    TRACES_EXPORTER_ENV: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    METRICS_EXPORTER_ENV: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
}
#: ``otlp`` means the exporter of the configured protocol, as in the SDK's own configuration.
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_INSTALL_HINT = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}

_configure_lock = threading.Lock()
_configured_from_environment = False


def application_has_providers() -> bool:
    """Whether a global TracerProvider or MeterProvider was set in this process.

    Runs on every hook while telemetry is off, so it reads the API's own globals: the public
    getters look the ``OTEL_PYTHON_*_PROVIDER`` variables up in ``os.environ`` on each call
    (those variables count as the environment asking, see below, and go through the getters).
    """
    return trace._TRACER_PROVIDER is not None or _metrics_globals._METER_PROVIDER is not None


def exporter_names(variable: str) -> list[str]:
    """The exporter entry-point names an ``OTEL_*_EXPORTER`` variable asks for (``none`` is none)."""
    names = [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]
    if names == ["none"]:
        return []
    protocol = (
        os.environ.get(_PROTOCOL_ENVS[variable]) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    return [_OTLP_BY_PROTOCOL.get(protocol, "otlp_proto_grpc") if name == "otlp" else name for name in names]


@functools.cache
def environment_asks_for_telemetry() -> bool:
    """Whether the SDK's variables name an exporter (and do not disable the SDK); read once per process."""
    if os.environ.get(SDK_DISABLED_ENV, "").strip().lower() == "true":
        return False
    if any(variable in os.environ for variable in PROVIDER_ENVS):
        return True
    return bool(exporter_names(TRACES_EXPORTER_ENV) or exporter_names(METRICS_EXPORTER_ENV))


def _load_exporters(variable: str) -> list[Callable[[], Any]]:
    """The exporter classes ``variable`` names; one that no installed package provides is warned about."""
    group = _ENTRY_POINT_GROUPS[variable]
    available = {entry_point.name: entry_point for entry_point in entry_points(group=group)}
    found = []
    for name in exporter_names(variable):
        entry_point = available.get(name)
        if entry_point is None:
            package = _INSTALL_HINT.get(name, "the package that provides it")
            installed = ", ".join(sorted(available)) or "none"
            warnings.warn(
                f"durably-otel: {variable}={os.environ.get(variable)!r} names the exporter {name!r}, "
                f"which no installed package provides (installed: {installed}); install {package} in "
                f"this process's environment, or fix {variable}. Exporting without it.",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found.append(entry_point.load())
    return found


def configure_from_environment() -> None:
    """Build SDK providers from ``OTEL_*`` and install them as the global ones (once per process)."""
    global _configured_from_environment
    with _configure_lock:
        # The public getters load a provider that OTEL_PYTHON_*_PROVIDER names.
        trace.get_tracer_provider()
        metrics.get_meter_provider()
        if _configured_from_environment or application_has_providers():
            return
        _configured_from_environment = True
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; each exporter reads
        # its own variables (OTEL_EXPORTER_OTLP_ENDPOINT, ...), the processors theirs (OTEL_BSP_*).
        resource = Resource.create()
        span_exporters = _load_exporters(TRACES_EXPORTER_ENV)
        if span_exporters:
            tracer_provider = TracerProvider(resource=resource)
            for exporter in span_exporters:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter()))
            trace.set_tracer_provider(tracer_provider)
        metric_exporters = _load_exporters(METRICS_EXPORTER_ENV)
        if metric_exporters:
            readers = [PeriodicExportingMetricReader(exporter()) for exporter in metric_exporters]
            metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
