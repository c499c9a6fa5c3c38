"""durably itself, through its public Ray 1.x-style API, on the `ray` or the `local` executor."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any

from _harness import (
    MANY_CHAIN,
    FeatureUnavailable,
    Implementation,
    Measured,
    actor_calls,
    descendant_pids,
    init_ray,
    latency_figures,
    main,
    many_figures,
    ray_finish_times,
)

VICTIM = Path(__file__).with_name("_resume_victim.py")
#: The bench-only exporters of ``--otel`` (OTLP encoding, nothing sent), found by entry point.
OTEL_SITE = Path(__file__).with_name("otel_site")
OTEL_EXPORTER = "otlp_encode_only"
#: How long the resume workload waits for its victim to stop half-way, or for the first new step.
RESUME_WAIT_SECONDS = 1800.0


def _define(workflow: Any) -> types.SimpleNamespace:
    """The workload's steps, defined after durably is imported (a missing feature shows as not available)."""

    @workflow.step
    def inc(x: int) -> int:
        return x + 1

    @workflow.step
    def gather(*values: int) -> int:
        return sum(values)

    @workflow.step
    def loop(i: int, n: int) -> Any:
        return i if i >= n else loop.step(i + 1, n)

    @workflow.step
    def add(a: int, b: int) -> int:
        return a + b

    @workflow.step
    def fib(n: int) -> Any:
        return n if n <= 1 else add.step(fib.step(n - 1), fib.step(n - 2))

    @workflow.step
    def stamp(_: int) -> float:
        return time.time()

    return types.SimpleNamespace(inc=inc, gather=gather, loop=loop, fib=fib, stamp=stamp)


def _define_counter(workflow: Any) -> Any:
    @workflow.virtual_actor
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> int:
            self.n += 1
            return self.n

    return Counter


class Durably(Implementation):
    # durably grows feature by feature; a missing one shows as "not available" in the table.
    missing_feature_errors = (AttributeError, NotImplementedError, ImportError)

    def __init__(self, executor: str, otel: bool = False) -> None:
        try:
            from durably import workflow
        except ImportError as error:
            raise FeatureUnavailable(f"durably.workflow does not import: {error}") from error
        self.workflow: Any = workflow
        self.executor = executor
        self.otel = otel
        self.steps = _define(workflow)
        self.uses_ray = executor == "ray"
        self.storage_url = ""

    def version(self) -> str:
        found = f"durably {distribution_version('durably')} ({self.executor} executor)"
        return f"{found}, durably-otel {distribution_version('durably-otel')}" if self.otel else found

    def start(self, storage_url: str) -> None:
        if self.otel:
            _start_telemetry()  # before Ray starts: its processes inherit the environment
        if self.uses_ray:
            import ray

            # Started here with the same options as the other Ray contenders; durably joins it.
            init_ray(ray)
        self.workflow.init(storage=storage_url, executor=self.executor)
        self.storage_url = storage_url

    def engine_pids(self) -> list[int]:
        # The ray executor's engines are detached actors of the cluster this driver started.
        return descendant_pids("ray::EngineActor") if self.uses_ray else [os.getpid()]

    def stop(self) -> None:
        if self.uses_ray:
            import ray

            ray.shutdown()

    def run_chain(self, n: int, run_id: str) -> int:
        output = self.steps.inc.step(0)
        for _ in range(n - 1):
            output = self.steps.inc.step(output)
        return int(output.run(workflow_id=run_id))

    def run_fanout(self, n: int, run_id: str) -> int:
        outputs = [self.steps.inc.step(i) for i in range(n)]
        return int(self.steps.gather.step(*outputs).run(workflow_id=run_id))

    def run_loop(self, n: int, run_id: str) -> int:
        return int(self.steps.loop.step(1, n).run(workflow_id=run_id))

    def run_fib(self, n: int, run_id: str) -> int:
        return int(self.steps.fib.step(n).run(workflow_id=run_id))

    def run_actor(self, n: int, run_id: str) -> Measured:
        started = time.perf_counter()
        counter = _define_counter(self.workflow).get_or_create(run_id)
        counter.incr.run()  # the first call starts the actor's Ray host (ray executor)
        return actor_calls(started, n, counter.incr.run)

    # The same chain, on the storage that --storage-url names.
    run_backend = run_chain

    def run_many(self, n: int, run_id: str) -> Measured:
        inc = self.steps.inc
        submitted: list[float] = []
        handles: list[Any] = []
        for index in range(n):
            submitted.append(time.perf_counter())
            output = inc.step(0)
            for _ in range(MANY_CHAIN - 1):
                output = inc.step(output)
            handles.append(output.run_async(workflow_id=f"{run_id}-{index}"))
        if self.uses_ray:
            import ray

            values, finished = ray_finish_times(ray, handles)
        else:
            finished = [0.0] * n
            values = [None] * n
            position = {id(future): index for index, future in enumerate(handles)}
            for future in concurrent.futures.as_completed(handles):
                finished[position[id(future)]] = time.perf_counter()
                values[position[id(future)]] = future.result()
        return Measured(sum(values), many_figures(submitted, finished))

    def run_latency(self, n: int, run_id: str) -> Measured:
        first_step: list[float] = []
        end_to_end: list[float] = []
        for index in range(n):
            wall, started = time.time(), time.perf_counter()
            body_started = self.steps.stamp.step(index).run(workflow_id=f"{run_id}-{index}")
            end_to_end.append(time.perf_counter() - started)
            first_step.append(body_started - wall)
        return Measured(n, {**latency_figures("first_step_", first_step), **latency_figures("", end_to_end)})

    def run_resume(self, n: int, run_id: str) -> Measured:
        """Crash a driver half-way through an n-step chain, resume it, then resume it again finished."""
        with tempfile.TemporaryDirectory(prefix="durably-bench-resume-") as control:
            options = {"storage-url": self.storage_url, "executor": self.executor, "workflow-id": run_id}
            options.update({"n": str(n), "control": control})
            command = [sys.executable, str(VICTIM), *(f"--{name}={value}" for name, value in options.items())]
            # Its own session: SIGKILL of the group takes its Ray cluster (engine included) down too.
            victim = subprocess.Popen(command, start_new_session=True)
            try:
                _wait_for_file(Path(control) / "stopped", victim)
            finally:
                _kill_group(victim)
            wall = time.time()
            pending = self.workflow.resume_async(run_id)
            first_new_step = float(_wait_for_file(Path(control) / "resumed").read_text()) - wall
            value = pending.result() if not self.uses_ray else _ray_get(pending)
            started = time.perf_counter()
            again = self.workflow.resume(run_id)
            finished = time.perf_counter() - started
        if again != value:
            raise RuntimeError(f"resume of the finished workflow returned {again!r}, not {value!r}")
        figures = {"crashed_resume_first_step_s": first_new_step, "finished_resume_s": finished}
        return Measured(int(value), figures, seconds=finished)


def _start_telemetry() -> None:
    """Telemetry on, as a deployment has it: the application's SDK providers here, and the SDK's
    variables for every process Ray starts (durably-otel builds the same providers there).

    Batched spans (``BatchSpanProcessor``) and periodic metrics, at the SDK's default intervals, to
    exporters that encode OTLP like the OTLP/HTTP exporter and send nothing (benchmarks/README.md).
    """
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        distribution_version("durably-otel")
    except (ImportError, PackageNotFoundError) as error:
        raise FeatureUnavailable(
            f"durably-otel or the OpenTelemetry SDK is not installed: {error}"
        ) from error
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OTEL_SITE), os.environ.get("PYTHONPATH")]))
    os.environ.update(
        OTEL_SERVICE_NAME="durably-bench",
        OTEL_TRACES_EXPORTER=OTEL_EXPORTER,
        OTEL_METRICS_EXPORTER=OTEL_EXPORTER,
    )
    sys.path.insert(0, str(OTEL_SITE))
    from durably_bench_otel import EncodeOnlyMetricExporter, EncodeOnlySpanExporter

    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(EncodeOnlySpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(EncodeOnlyMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def _ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def _wait_for_file(path: Path, process: subprocess.Popen[bytes] | None = None) -> Path:
    """Poll for ``path``; fail if ``process`` exits first or after RESUME_WAIT_SECONDS."""
    deadline = time.monotonic() + RESUME_WAIT_SECONDS
    while not path.exists():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the resume victim exited with {process.returncode} before it stopped")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear in {RESUME_WAIT_SECONDS:.0f} s")
        time.sleep(0.005)
    return path  # the victim writes it beside and renames it: it is complete once it is there


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the victim, its process group and every process below it (its Ray, if any), and wait
    until they are gone: a step worker or engine still alive would hold the workflow's lease."""
    below = descendant_pids("", process.pid)  # Ray may start some of them in sessions of their own
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 60
    while any(os.path.exists(f"/proc/{pid}") for pid in below) and time.monotonic() < deadline:
        time.sleep(0.01)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=("ray", "local"), default="ray")
    parser.add_argument(
        "--otel", action="store_true", help="with durably-otel on, exporting every span and metric"
    )


if __name__ == "__main__":
    main(lambda args: Durably(args.executor, args.otel), _add_arguments)
