"""The part every implementation subprocess shares: arguments, warm-up, timing, checking and the JSON result.

Standard library only, because it also runs inside the ray 2.47 venv where durably is not installed.
"""

from __future__ import annotations

import abc
import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("chain", "fanout", "loop", "fib", "actor", "backend", "many", "latency", "resume")
#: Workloads whose wall time is not a sum of per-step costs: ms/step means nothing for them.
NOT_PER_STEP = frozenset({"resume"})
#: Steps in each workflow of the `many` workload.
MANY_CHAIN = 3
#: How often the engine process's RSS is read while a run is timed.
RSS_SAMPLE_SECONDS = 0.05


class FeatureUnavailable(Exception):
    """The implementation does not have what the workload needs (yet); reported as "not available"."""


def fib_value(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def step_count(workload: str, n: int) -> int:
    """Steps one run does, counted the same way for every implementation so ms/step compares.

    fib counts the calls of the naive recursion (2·fib(n+1)-1, 21,891 for fib(20)); the add steps that
    join them are not counted. fanout counts the N independent steps plus the final gather.
    """
    if workload == "fib":
        return 2 * fib_value(n + 1) - 1
    if workload == "fanout":
        return n + 1
    if workload == "many":
        return MANY_CHAIN * n
    if workload == "actor":
        return n + 1
    return n


def expected_result(workload: str, n: int) -> int:
    """What a correct run returns, so a fast but wrong implementation cannot win.

    `many` returns the sum of its n workflows' outputs (3 each); `latency` the number of runs;
    `actor` the counter after its first call and the n timed ones.
    """
    if workload == "fib":
        return fib_value(n)
    if workload == "fanout":
        return n * (n + 1) // 2  # the sum of inc(i) for i in range(n)
    if workload == "many":
        return MANY_CHAIN * n
    if workload == "actor":
        return n + 1
    return n


def warmup_size(workload: str) -> int:
    return 3 if workload == "fib" else 5


@dataclass
class Measured:
    """What a workload returns when one wall time is not the whole story.

    ``seconds`` replaces the harness's own timing of the call (for a workload that prepares
    something untimed first, as `resume` does); ``figures`` are named extra figures, in the unit
    their name ends with (``_ms``, ``_s``, ``_per_s``).
    """

    result: Any
    figures: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100) of at least one value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_figures(prefix: str, seconds: Iterable[float]) -> dict[str, float]:
    """p50 and p99 in ms of a list of latencies in seconds, named ``<prefix>p50_ms`` and ``..p99_ms``."""
    values = list(seconds)
    return {
        f"{prefix}p50_ms": 1000 * percentile(values, 50),
        f"{prefix}p99_ms": 1000 * percentile(values, 99),
    }


def actor_calls(started: float, n: int, call: Callable[[], Any]) -> Measured:
    """Time ``n`` calls of an actor created and called once since ``started`` (a perf_counter reading).

    The calls alone are the workload's time: creating an actor starts a process (a Ray worker,
    for durably the virtual actor's Ray host), which takes from milliseconds (an idle worker was
    there) to seconds (a new one, on a loaded machine) and would drown the per-call cost. What
    creation and the first call took is the figure ``create_ms``.
    """
    created = time.perf_counter()
    value = 0
    for _ in range(n):
        value = call()
    finished = time.perf_counter()
    return Measured(int(value), {"create_ms": 1000 * (created - started)}, finished - created)


def many_figures(submitted: list[float], finished: list[float]) -> dict[str, float]:
    """Workflows per second (first submit to last result) and p50/p99 of each one's submit-to-result time.

    Both lists hold ``time.perf_counter()`` readings, index i for workflow i.
    """
    span = max(finished) - min(submitted)
    return {
        "workflows_per_s": len(finished) / span if span > 0 else math.inf,
        **latency_figures("", [end - start for start, end in zip(submitted, finished, strict=True)]),
    }


def ray_finish_times(ray: Any, refs: list[Any]) -> tuple[list[Any], list[float]]:
    """Wait for every ref; return their values and the perf_counter reading when each was seen ready.

    ``ray`` is the module (this file imports no third-party package).
    """
    index = {ref: position for position, ref in enumerate(refs)}
    values: list[Any] = [None] * len(refs)
    finished = [0.0] * len(refs)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        if pending:
            more, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            ready += more
        now = time.perf_counter()
        for ref, value in zip(ready, ray.get(ready), strict=True):
            values[index[ref]] = value
            finished[index[ref]] = now
    return values, finished


def init_ray(ray: Any, attempts: int = 5, **options: Any) -> None:
    """Start a local Ray of this process's own, as every Ray contender does (``ray`` is the module).

    Ray gives a new node 30 s to register with its GCS, which a loaded machine can miss: retry.
    """
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, **options)
            return
        except Exception as error:
            if "timed out during startup" not in str(error) or attempt == attempts:
                raise
            print(f"Ray did not start ({error}); attempt {attempt + 1} of {attempts}", file=sys.stderr)
            ray.shutdown()


def _rss_bytes(pid: int) -> int | None:
    """The resident set size of ``pid`` now, or None once it is gone.

    psutil where it is installed (the bench session has it); /proc in the ray 2.47 venv.
    """
    try:
        import psutil
    except ImportError:
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def driver_peak_rss_mb() -> float:
    """This process's peak RSS over its whole life (start-up and warm-up included), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def descendant_pids(title: str, root: int | None = None) -> list[int]:
    """Processes below ``root`` (default: this one) whose command line starts with ``title``.

    Ray names an actor's process ``ray::<ActorClass>[.<method>]``, so ``ray::EngineActor`` finds
    the engine actors of the cluster this driver started. Linux /proc only; elsewhere an empty list.
    """
    parents: dict[int, int] = {}
    titles: dict[int, str] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                titles[int(entry)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    below, frontier = set(), [os.getpid() if root is None else root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in below]
        below.update(children)
        frontier.extend(children)
    return sorted(pid for pid in below if titles.get(pid, "").startswith(title))


class RssSampler:
    """Samples the summed RSS of some processes in a thread while a run is timed; keeps the largest."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while self.pids:
            self.peak = max(self.peak, sum(_rss_bytes(pid) or 0 for pid in self.pids))
            if self._stop.wait(RSS_SAMPLE_SECONDS):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float | None:
        return self.peak / (1024 * 1024) if self.peak else None


class Implementation(abc.ABC):
    """One system under test. Workloads are methods named `run_<workload>(n, run_id)`, returning the
    workflow's result, or a Measured holding it with more figures."""

    # Errors that mean "this feature is not there yet" rather than "it is broken"; only an
    # implementation still being written (durably) sets them.
    missing_feature_errors: tuple[type[BaseException], ...] = ()

    @abc.abstractmethod
    def version(self) -> str:
        """The version of the library measured, for the results file."""

    @abc.abstractmethod
    def start(self, storage_url: str) -> None:
        """Start the runtime (Ray, DBOS, ...) once; not timed."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Shut the runtime down; not timed."""

    def engine_pids(self) -> list[int]:
        """The processes that drive workflows (asked after the warm-up); none for plain Ray.

        Their summed RSS is sampled while the run is timed. An engine inside the driver is
        ``[os.getpid()]``.
        """
        return []

    def workload(self, name: str) -> Callable[[int, str], Any] | None:
        found = getattr(self, f"run_{name}", None)
        return found if callable(found) else None


def _parse(argv: list[str] | None, add_arguments: Callable[[argparse.ArgumentParser], None] | None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument(
        "--storage-url", default="file", help="'file' means a fresh temporary folder; anything else as given"
    )
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args(argv)


def _storage_url(given: str, scratch: str) -> str:
    if given == "file":
        return "file://" + os.path.join(scratch, "storage")
    return given


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def _measure(impl: Implementation, args: Any, scratch: str) -> dict[str, Any]:
    run = impl.workload(args.workload)
    if run is None:
        return {"status": "n/a", "message": f"no {args.workload} workload"}
    unavailable: tuple[type[BaseException], ...] = (FeatureUnavailable, *impl.missing_feature_errors)
    try:
        impl.start(_storage_url(args.storage_url, scratch))
    except unavailable as error:
        traceback.print_exc()
        return {"status": "unavailable", "message": _describe(error)}
    try:
        tag = f"{os.getpid()}-{int(time.time())}"
        try:
            run(warmup_size(args.workload), f"warmup-{args.workload}-{tag}")
        except unavailable as error:
            traceback.print_exc()
            return {"status": "unavailable", "message": _describe(error)}
        seconds: list[float] = []
        figures: list[dict[str, float]] = []
        expected = expected_result(args.workload, args.n)
        engines = impl.engine_pids()
        with RssSampler(engines) as engine_rss:
            for attempt in range(args.repeat):
                started = time.perf_counter()
                result = run(args.n, f"{args.workload}-{args.n}-{attempt}-{tag}")
                elapsed = time.perf_counter() - started
                if isinstance(result, Measured):
                    elapsed = elapsed if result.seconds is None else result.seconds
                    figures.append(result.figures)
                    result = result.result
                seconds.append(elapsed)
                if result != expected:
                    return {"status": "error", "message": f"wrong result {result!r}, expected {expected!r}"}
        return {
            "status": "ok",
            "seconds": seconds,
            "figures": figures,
            "driver_peak_rss_mb": driver_peak_rss_mb(),
            "engine_peak_rss_mb": engine_rss.peak_mb,
            "engine_processes": len(engines),
            "engine_in_driver": engines == [os.getpid()],
        }
    finally:
        impl.stop()


def main(
    make: Callable[[Any], Implementation],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
) -> None:
    """Run one workload on one implementation and write {"status", "seconds", ...} to --out.

    Every outcome, including a crash, ends as a JSON file, so run.py can put it in the table.
    """
    args = _parse(argv, add_arguments)
    scratch = tempfile.mkdtemp(prefix="durably-bench-")
    outcome: dict[str, Any]
    version = "?"
    try:
        impl = make(args)
        version = impl.version()
        outcome = _measure(impl, args, scratch)
    except FeatureUnavailable as error:
        outcome = {"status": "unavailable", "message": _describe(error)}
    except BaseException as error:  # a benchmark reports every failure instead of dying silently
        traceback.print_exc()
        outcome = {"status": "error", "message": _describe(error)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    outcome.update(
        workload=args.workload,
        n=args.n,
        steps=step_count(args.workload, args.n),
        version=version,
        python=sys.version.split()[0],
    )
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(outcome, handle)
