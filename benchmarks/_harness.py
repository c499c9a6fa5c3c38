"""The part every implementation subprocess shares: arguments, warm-up, timing, checking and the JSON result.

Standard library only, because it also runs inside the ray 2.47 venv where durably is not installed.
"""

from __future__ import annotations

import abc
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

WORKLOADS = ("chain", "fanout", "loop", "fib", "actor", "backend")


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
    return n


def expected_result(workload: str, n: int) -> int:
    """What a correct run returns, so a fast but wrong implementation cannot win."""
    if workload == "fib":
        return fib_value(n)
    if workload == "fanout":
        return n * (n + 1) // 2  # the sum of inc(i) for i in range(n)
    return n


def warmup_size(workload: str) -> int:
    return 3 if workload == "fib" else 5


class Implementation(abc.ABC):
    """One system under test. Workloads are methods named `run_<workload>(n, run_id) -> result`."""

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
        expected = expected_result(args.workload, args.n)
        for attempt in range(args.repeat):
            started = time.perf_counter()
            result = run(args.n, f"{args.workload}-{args.n}-{attempt}-{tag}")
            seconds.append(time.perf_counter() - started)
            if result != expected:
                return {"status": "error", "message": f"wrong result {result!r}, expected {expected!r}"}
        return {"status": "ok", "seconds": seconds}
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
