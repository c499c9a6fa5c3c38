"""How a process without the application's providers gets telemetry (or none): the SDK's OTEL_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: A child that runs one two-step workflow on the local executor and sets no provider itself.
CHILD = """
import sys
from opentelemetry import trace
from durably import workflow
from durably_otel import _telemetry

@workflow.step
def double(value):
    return 2 * value

workflow.init(storage=sys.argv[1], executor="local")
assert double.step(double.step(1)).run(workflow_id="w") == 4
print("telemetry on:", _telemetry._telemetry is not None, file=sys.stderr)
print("global provider:", type(trace.get_tracer_provider()).__name__, file=sys.stderr)
"""


def run_child(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path / "storage")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_without_a_provider_or_exporter_variables_telemetry_stays_off(tmp_path: Path) -> None:
    child = run_child(tmp_path)

    assert child.returncode == 0, child.stderr
    assert "telemetry on: False" in child.stderr
    assert "global provider: ProxyTracerProvider" in child.stderr


def test_exporter_variables_build_and_install_providers_that_export_every_span(tmp_path: Path) -> None:
    child = run_child(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="billing")

    assert child.returncode == 0, child.stderr
    assert "global provider: TracerProvider" in child.stderr
    # The console exporter prints each span as indented JSON; the processor flushes at exit.
    spans = json.loads("[" + child.stdout.replace("}\n{", "},\n{") + "]")
    assert sorted(span["name"] for span in spans) == [
        "durably.step double",
        "durably.step double",
        "durably.workflow",
    ]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"billing"}


def test_an_exporter_no_installed_package_provides_is_named_with_the_package_to_install(
    tmp_path: Path,
) -> None:
    child = run_child(tmp_path, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")

    assert child.returncode == 0, child.stderr  # the workflow still runs
    assert "OTEL_TRACES_EXPORTER='otlp' names the exporter 'otlp_proto_grpc'" in child.stderr
    assert "install opentelemetry-exporter-otlp-proto-grpc" in child.stderr


def test_otel_sdk_disabled_keeps_telemetry_off_whatever_the_exporters(tmp_path: Path) -> None:
    child = run_child(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")

    assert child.returncode == 0, child.stderr
    assert "telemetry on: False" in child.stderr
    assert child.stdout == ""


def test_durably_plugins_lists_the_plugin_and_its_hooks() -> None:
    durably = Path(sys.executable).with_name("durably")
    listing = subprocess.run(
        [durably, "plugins"], capture_output=True, text=True, timeout=120, check=True
    ).stdout

    assert "otel  (durably-otel 0.1.0, durably_otel.plugin)" in listing
    hooks = next(line for line in listing.splitlines() if "durably_propagation_context" in line)
    assert "durably_step_started" in hooks and "durably_actor_call_started" in hooks
