"""The table printed after a fault session: runs, faults landed (of those planned), violations, seeds."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from durably_faults.checker import CHECKS, Verdict


def table(verdicts: Iterable[Verdict]) -> str:
    verdicts = list(verdicts)
    faults: collections.Counter[str] = collections.Counter()
    planned: collections.Counter[str] = collections.Counter()
    for verdict in verdicts:
        faults.update(verdict.record.faults)
        planned.update(verdict.record.planned)
    kills = sum(count for kind, count in faults.items() if kind.startswith("kill-"))
    planned_kills = sum(count for kind, count in planned.items() if kind.startswith("kill-"))
    storage_runs = sum(
        1 for verdict in verdicts if any(k.startswith("storage-") for k in verdict.record.faults)
    )
    rows = [
        ("runs", str(len(verdicts))),
        ("runs with storage faults", str(storage_runs)),
        ("kills landed (all kinds)", f"{kills} of {planned_kills} planned"),
        *(
            (f"faults: {kind}", f"{count}" + (f" of {planned[kind]} planned" if kind in planned else ""))
            for kind, count in sorted(faults.items())
        ),
        ("re-executions of checkpointed steps (must be 0)", str(sum(v.re_executions for v in verdicts))),
        ("lost results (must be 0)", str(sum(v.lost_results for v in verdicts))),
    ]
    for check in CHECKS:
        seeds = [f"{v.record.kind}:{v.record.seed}" for v in verdicts if v.findings[check]]
        rows.append((f"failed '{check}'", f"{len(seeds)}  seeds: {' '.join(seeds) or '-'}"))
    width = max(len(name) for name, _ in rows)
    lines = ["durably fault-injection results", "-" * (width + 40)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    failing = sorted({v.record.seed for v in verdicts if v.failed})
    lines.append(f"replay a failing run: nox -s faults -- --seed N   (failing seeds: {failing or 'none'})")
    return "\n".join(lines)
