"""Runs every workload on durably and its peers, each in a fresh subprocess, and prints one table of ratios.

nox -s bench                       # full sizes
nox -s bench -- --quick            # small sizes, a smoke check
nox -s bench -- --only chain,fanout --sizes chain=20000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import MANY_CHAIN, NOT_PER_STEP, WORKLOADS, fib_value, step_count  # noqa: E402
from _peer_venv import ensure_ray_workflow_venv  # noqa: E402
from _services import SERVED, Services  # noqa: E402

FULL_SIZES = {
    "chain": 100_000,
    "fanout": 100_000,
    "loop": 100_000,
    "fib": 20,
    "actor": 100_000,
    "backend": 100_000,
    "many": 1_000,  # workflows of 3 steps
    "latency": 200,  # runs of a 1-step workflow
    "resume": 100_000,
}
QUICK_SIZES = {
    "chain": 500,
    "fanout": 500,
    "loop": 500,
    "fib": 10,
    "actor": 200,
    "backend": 500,
    "many": 100,
    "latency": 50,
    "resume": 500,
}
#: Where the backend workload runs by default: SeaweedFS's S3 and fake-gcs-server (the chain rows
#: are the same workload on file storage).
DEFAULT_STORAGE = list(SERVED)
FLOOR = "ray"
DURABLE_FLOOR = "ray+fsync"
PREDECESSOR = "ray.workflow"
RAY_WORKFLOW_VENV = HERE / ".venvs" / "ray247"


@dataclass(frozen=True)
class Contender:
    """One implementation: the script that runs it and what it can run."""

    name: str
    script: str
    workloads: frozenset[str]
    args: tuple[str, ...] = ()
    # Peers that would take far too long at the full sizes run at most this many steps instead;
    # ms per step is then reported at the size they ran.
    max_steps: int | None = None
    is_durably: bool = False
    #: Environment variables of its subprocess (the codec keys of the signed and encrypted rows).
    env: tuple[tuple[str, str], ...] = ()

    @property
    def variant(self) -> bool:
        """A durably row that measures an option's cost (codecs, tracing) against its plain row:
        capped like a peer (max_steps), as its per-step cost does not depend on N."""
        return self.is_durably and self.max_steps is not None


ALL = frozenset(WORKLOADS)
#: The most steps a variant row runs by default (see Contender.variant; --peer-steps 0 lifts it).
VARIANT_STEPS = 10_000
CONTENDERS = (
    Contender(FLOOR, "impl_ray.py", ALL - {"resume"}),
    # The durable floor: plain Ray whose every task (and actor call) also writes its result to a
    # new file and fdatasyncs it, the least a durable step costs on this disk, as a ratio to "ray".
    Contender(
        DURABLE_FLOOR, "impl_ray.py", frozenset({"chain", "fanout", "loop", "fib", "actor"}), ("--record",)
    ),
    Contender("durably[ray]", "impl_durably.py", ALL, ("--executor", "ray"), is_durably=True),
    Contender("durably[local]", "impl_durably.py", ALL, ("--executor", "local"), is_durably=True),
    # The per-step cost of the codecs on the ray chain, as ratios to durably[ray] (fixed bench keys).
    Contender(
        "durably[ray+sign]",
        "impl_durably.py",
        frozenset({"chain"}),
        ("--executor", "ray"),
        is_durably=True,
        env=(("DURABLY_SIGNING_KEY", "bench:not-a-secret"),),
        max_steps=VARIANT_STEPS,
    ),
    Contender(
        "durably[ray+encrypt]",
        "impl_durably.py",
        frozenset({"chain"}),
        ("--executor", "ray"),
        is_durably=True,
        env=(("DURABLY_ENCRYPTION_KEY", "bench:" + "A" * 43 + "="),),
        max_steps=VARIANT_STEPS,
    ),
    # What tracing and metrics cost on the chain (durably-otel on, exporting; see the README), as
    # ratios to durably[ray] and durably[local], where durably-otel is installed but off.
    Contender(
        "durably[ray+otel]",
        "impl_durably.py",
        frozenset({"chain"}),
        ("--executor", "ray", "--otel"),
        is_durably=True,
        max_steps=VARIANT_STEPS,
    ),
    Contender(
        "durably[local+otel]",
        "impl_durably.py",
        frozenset({"chain"}),
        ("--executor", "local", "--otel"),
        is_durably=True,
        max_steps=VARIANT_STEPS,
    ),
    # The same ray executor with its workflows spread over two engine actors (DURABLY_ENGINES=2;
    # durably[ray] has one on this one-node cluster): what a second engine process buys or costs.
    Contender(
        "durably[ray+2engines]",
        "impl_durably.py",
        frozenset({"many", "latency"}),
        ("--executor", "ray"),
        is_durably=True,
        env=(("DURABLY_ENGINES", "2"),),
    ),
    Contender(
        PREDECESSOR,
        "impl_ray_workflow.py",
        frozenset({"chain", "fanout", "loop", "fib", "many", "latency"}),
        max_steps=2_000,
    ),
    Contender(
        "dbos", "impl_dbos.py", frozenset({"chain", "fanout", "loop", "many", "latency"}), max_steps=10_000
    ),
)


@dataclass
class Row:
    workload: str
    implementation: str
    n: int | None = None
    steps: int | None = None
    status: str = "pending"  # ok | pending | unavailable | error | timeout | skipped
    seconds: list[float] = field(default_factory=list)
    message: str = ""
    version: str = ""
    note: str = ""
    vs_floor: float | None = None
    vs_durable_floor: float | None = None
    vs_ray_workflow: float | None = None
    timeout: float = 0.0
    storage: str | None = None  # the backend workload's --storage-url keyword or URL
    # Named figures of each timed run (see _harness.Measured); the table shows the best run's.
    figures: list[dict[str, float]] = field(default_factory=list)
    driver_peak_rss_mb: float | None = None
    engine_peak_rss_mb: float | None = None
    engine_in_driver: bool = False

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.status == "ok" and self.seconds else None

    @property
    def best_figures(self) -> dict[str, float]:
        if self.best is None or len(self.figures) != len(self.seconds):
            return {}
        return self.figures[self.seconds.index(self.best)]

    @property
    def ms_per_step(self) -> float | None:
        best = self.best
        if best is None or not self.steps or self.workload in NOT_PER_STEP:
            return None
        return 1000 * best / self.steps


def _parse_sizes(text: str) -> dict[str, int]:
    sizes = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in WORKLOADS or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"expected WORKLOAD=N with a workload of {WORKLOADS}, got {item!r}"
            )
        sizes[name] = int(value)
    return sizes


def _parse_names(text: str, known: tuple[str, ...]) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(known)}")
    return names


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    names = tuple(contender.name for contender in CONTENDERS)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke check")
    parser.add_argument("--sizes", type=_parse_sizes, default={}, help="e.g. chain=20000,fib=15")
    parser.add_argument("--only", type=lambda text: _parse_names(text, WORKLOADS), help="e.g. chain,fanout")
    parser.add_argument(
        "--implementations", type=lambda text: _parse_names(text, names), help=",".join(names)
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per cell; the best is reported")
    parser.add_argument(
        "--peer-steps",
        type=int,
        help="run ray.workflow, DBOS and the codec and otel rows of durably at up to this many steps "
        "(default 2,000, 10,000 and 10,000; 0: full sizes)",
    )
    parser.add_argument(
        "--storage-url",
        action="append",
        help="storage for the backend workload, repeatable: 'file' (a fresh temporary folder), 's3' "
        "(SeaweedFS) and 'gcs' (fake-gcs-server), started by the bench, or any URL; default s3 and gcs",
    )
    parser.add_argument("--timeout", type=float, help="seconds per run (default 3600, quick 300)")
    parser.add_argument(
        "--budget", type=float, help="seconds for the whole bench (default 5 h, quick 45 min)"
    )
    parser.add_argument(
        "--results", type=Path, default=HERE / "results", help="folder for the JSON and markdown"
    )
    args = parser.parse_args(argv)
    # A full cell of 100,000 steps on S3 takes 15-30 min on a busy 2-core machine.
    args.timeout = args.timeout or (300.0 if args.quick else 3600.0)
    args.budget = args.budget or (2700.0 if args.quick else 5 * 3600.0)
    args.storage_url = args.storage_url or DEFAULT_STORAGE
    return args


def _size_for(contender: Contender, workload: str, n: int, peer_steps: int | None) -> int:
    """The N this contender runs: the one asked for, or less for a slow peer or a variant row (max_steps)."""
    limit = contender.max_steps if peer_steps is None else (peer_steps or None)
    if limit is None or (contender.is_durably and not contender.variant) or contender.name == FLOOR:
        return n
    if workload == "many":
        return max(1, min(n, limit // MANY_CHAIN))
    if workload != "fib":
        return min(n, limit)
    while n > 1 and step_count(workload, n) > limit:
        n -= 1
    return n


def _plan(args: argparse.Namespace) -> Iterator[tuple[Contender, Row, list[str]]]:
    """Every cell of the table, with the extra arguments its subprocess needs."""
    sizes = {**(QUICK_SIZES if args.quick else FULL_SIZES), **args.sizes}
    chosen = [c for c in CONTENDERS if not args.implementations or c.name in args.implementations]
    for workload in args.only or WORKLOADS:
        # A contender without this workload (a peer with no equivalent, a variant row) has no row.
        for contender in (c for c in chosen if workload in c.workloads):
            urls = args.storage_url if workload == "backend" and contender.is_durably else [None]
            for url in urls:
                label = contender.name if url is None else f"{contender.name} [{url.split(':')[0]}]"
                row = Row(workload, label, storage=url)
                asked = sizes[workload]
                row.n = _size_for(contender, workload, asked, args.peer_steps)
                if row.n != asked:
                    kind = "variant" if contender.variant else "peer"
                    row.note = f"{kind} run at N={row.n:,} (asked {asked:,})"
                yield contender, row, list(contender.args)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the run's process group (the driver and what it started), politely first."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _environment(python: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    venv = Path(python).parent.parent
    if (venv / "pyvenv.cfg").exists():
        # The peer venv must not see the bench session's venv first on PATH.
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def _run_one(
    python: str,
    script: str,
    row: Row,
    extra: list[str],
    args: argparse.Namespace,
    log: Path,
    services: Services,
    env: tuple[tuple[str, str], ...] = (),
) -> None:
    """Run one cell in its own subprocess and fill the row from the JSON it writes."""
    with tempfile.TemporaryDirectory(prefix="durably-bench-run-") as scratch:
        out = Path(scratch) / "result.json"
        assert row.n is not None
        command = [python, str(HERE / script), "--workload", row.workload, "--n", str(row.n)]
        command += ["--repeat", str(args.repeat), "--out", str(out), *extra]
        if row.storage is not None:
            try:
                command += ["--storage-url", services.storage_url(row.storage)]
            except (OSError, RuntimeError) as error:
                row.status, row.message = "error", f"could not start its storage server: {error}"
                return
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=scratch, stdout=log_file, stderr=subprocess.STDOUT,
                env={**services.environment(_environment(python)), **dict(env)}, start_new_session=True,
            )  # fmt: skip
            try:
                process.wait(row.timeout)
            except subprocess.TimeoutExpired:
                _stop_group(process)
                row.status, row.message = "timeout", f"no result after {row.timeout:.0f} s"
                return
        if not out.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            row.status, row.message = "error", f"exit {process.returncode}: " + " | ".join(tail)
            return
        result: dict[str, Any] = json.loads(out.read_text())
    row.status = result["status"]
    row.seconds = result.get("seconds", [])
    row.message = result.get("message", "")
    row.version = result.get("version", "")
    row.steps = result.get("steps")
    row.figures = result.get("figures", [])
    row.driver_peak_rss_mb = result.get("driver_peak_rss_mb")
    row.engine_peak_rss_mb = result.get("engine_peak_rss_mb")
    row.engine_in_driver = bool(result.get("engine_in_driver"))


def _add_ratios(rows: list[Row]) -> None:
    def per_step(workload: str, name: str) -> float | None:
        found = [row.ms_per_step for row in rows if row.workload == workload and row.implementation == name]
        return found[0] if found else None

    for row in rows:
        mine = row.ms_per_step
        if mine is None:
            continue
        floor = per_step(row.workload, FLOOR)
        row.vs_floor = mine / floor if floor else None
        if row.implementation.startswith("durably"):
            durable_floor = per_step(row.workload, DURABLE_FLOOR)
            row.vs_durable_floor = mine / durable_floor if durable_floor else None
            predecessor = per_step(row.workload, PREDECESSOR)
            row.vs_ray_workflow = mine / predecessor if predecessor else None


HEADER = (
    "workload", "N", "implementation", "total s", "ms/step", "x floor", "x fsync floor",
    "durably/ray.workflow", "driver MB", "engine MB", "figures", "note",
)  # fmt: skip


def format_figures(figures: dict[str, float]) -> str:
    """``{"first_step_p50_ms": 2.1, "workflows_per_s": 312}`` -> ``first step p50 2.1 ms, workflows 312/s``"""
    shown = []
    for name, value in figures.items():
        seconds = "{:,.2f} s" if value >= 1 else "{:.3f} s"
        for suffix, unit in (("_per_s", "{:,.0f}/s"), ("_ms", "{:,.1f} ms"), ("_s", seconds)):
            if name.endswith(suffix):
                shown.append(f"{name.removesuffix(suffix).replace('_', ' ')} {unit.format(value)}")
                break
        else:
            shown.append(f"{name.replace('_', ' ')} {value:,.3g}")
    return ", ".join(shown)


def _megabytes(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _cells(row: Row) -> tuple[str, ...]:
    def ratio(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    n = "" if row.n is None else f"{row.n:,}"
    if row.status != "ok":
        outcome = {"unavailable": "not available"}.get(row.status, row.status)
        note = f"{outcome}: {row.message}" if row.message else outcome
        return (row.workload, n, row.implementation, "n/a", "n/a", "", "", "", "", "", "", note[:160])
    per_step = "" if row.ms_per_step is None else f"{row.ms_per_step:.3f}"
    engine = "in driver" if row.engine_in_driver else _megabytes(row.engine_peak_rss_mb)
    best = row.best or 0.0
    return (row.workload, n, row.implementation, f"{best:.2f}" if best >= 1 else f"{best:.3f}", per_step,
            ratio(row.vs_floor), ratio(row.vs_durable_floor), ratio(row.vs_ray_workflow),
            _megabytes(row.driver_peak_rss_mb), engine, format_figures(row.best_figures),
            row.note)  # fmt: skip


def format_text(rows: list[Row]) -> str:
    table = [HEADER, *(_cells(row) for row in rows)]
    # Every column but the last (the free-text note) is padded to its widest cell.
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADER) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]])
        for line in table
    ]
    return "\n".join(line.rstrip() for line in lines)


def format_markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [f"# durably benchmarks, {meta['started']}", "", f"`{meta['command']}`", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |" for row in rows]
    lines += ["", "Versions: " + ", ".join(sorted({row.version for row in rows if row.version})), ""]
    lines += [f"ms/step is the best of {meta['repeat']} run(s) over the steps of one run; fib(n) counts its "
              f"2·fib(n+1)-1 calls (fib(20): {2 * fib_value(21) - 1:,}). x floor divides by plain Ray's "
              "ms/step, x fsync floor by ray+fsync's (plain Ray writing and fdatasyncing each result), "
              "durably/ray.workflow by ray.workflow 2.47's, each at the N it ran. driver MB "
              "is the driver's peak RSS, engine MB the peak summed RSS of the engine process(es) "
              "while timed (see benchmarks/README.md)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _python_for(contender: Contender, meta: dict[str, Any]) -> str:
    if contender.name != PREDECESSOR:
        return sys.executable
    if "ray_workflow_python" not in meta:
        print(f"ray.workflow: preparing its venv in {RAY_WORKFLOW_VENV} ...", file=sys.stderr, flush=True)
        python, seconds = ensure_ray_workflow_venv(RAY_WORKFLOW_VENV)
        meta["ray_workflow_python"] = str(python)
        meta["ray_workflow_venv_seconds"] = seconds
        made = "reused" if seconds is None else f"created in {seconds:.1f} s"
        print(f"ray.workflow: venv {made}", file=sys.stderr, flush=True)
    return str(meta["ray_workflow_python"])


def _write_results(folder: Path, stamp: str, rows: list[Row], meta: dict[str, Any]) -> None:
    _add_ratios(rows)
    meta["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    document = {"meta": meta, "rows": [{**asdict(row), "ms_per_step": row.ms_per_step} for row in rows]}
    for name in (stamp, "latest"):
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
        (folder / f"{name}.md").write_text(format_markdown(rows, meta))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    logs = args.results / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "timeout_s": args.timeout,
        # Other work on the machine skews every figure; the load says how quiet it was.
        "load_average_at_start": os.getloadavg(),
    }
    deadline = time.monotonic() + args.budget
    planned = list(_plan(args))
    rows = [row for _, row, _ in planned]
    with Services(logs / "services") as services:
        _run_all(planned, rows, args, meta, deadline, logs, stamp, services)
    _write_results(args.results, stamp, rows, meta)
    print(format_text(rows))
    if meta.get("ray_workflow_venv_seconds") is not None:
        print(f"\nray 2.47 venv created in {meta['ray_workflow_venv_seconds']:.1f} s (not in the table)")
    print(f"\nwritten: {args.results / (stamp + '.md')} and .json; logs in {logs}")
    return 0


def _run_all(
    planned: list[tuple[Contender, Row, list[str]]],
    rows: list[Row],
    args: argparse.Namespace,
    meta: dict[str, Any],
    deadline: float,
    logs: Path,
    stamp: str,
    services: Services,
) -> None:
    for index, (contender, row, extra) in enumerate(planned, 1):
        left = deadline - time.monotonic()
        if left <= 0:
            row.status, row.message = "skipped", "the bench's time budget ran out"
            continue
        row.timeout = min(args.timeout, left)
        try:
            python: str | None = _python_for(contender, meta)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
            python = None
            row.status, row.message = "error", f"could not prepare its venv: {error}"
        print(f"[{index}/{len(planned)}] {row.workload} N={row.n:,} {row.implementation} ...",
              end=" ", file=sys.stderr, flush=True)  # fmt: skip
        if python is not None:
            log = logs / f"{row.workload}-{row.implementation.replace(' ', '_')}.log"
            _run_one(python, contender.script, row, extra, args, log, services, contender.env)
        shown = f"{row.best:.2f} s" if row.best is not None else f"{row.status} {row.message}"[:200]
        print(shown, file=sys.stderr, flush=True)
        # Written after every cell, so a bench stopped half-way keeps what it measured.
        _write_results(args.results, stamp, rows, meta)


if __name__ == "__main__":
    sys.exit(main())
