"""Geometry of the pictures on a workflow's page: the step graph and the timeline (drawn as SVG)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from durably.inspect import StepView

NODE_WIDTH = 168
NODE_HEIGHT = 40
COLUMN_GAP = 56
ROW_GAP = 18
MARGIN = 12
#: Pictures stop at this many steps (the table below them lists every step).
MAX_DRAWN_STEPS = 400
TIMELINE_WIDTH = 880
TIMELINE_LABEL_WIDTH = 190
TIMELINE_ROW = 24


@dataclass(frozen=True)
class Node:
    step: StepView
    x: int
    y: int
    continuation_of: str | None  # the step whose returned sub-graph this step belongs to


@dataclass(frozen=True)
class Edge:
    path: str  # SVG path data
    continuation: bool  # dashed: "returned this sub-graph", not "consumes the output of"


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    truncated: bool


def flatten(steps: Iterable[StepView]) -> list[tuple[StepView, str | None]]:
    """Every step, sub-graph steps right after the step that returned them: (step, parent id)."""
    ordered: list[tuple[StepView, str | None]] = []
    pending: list[tuple[StepView, str | None]] = [(step, None) for step in reversed(tuple(steps))]
    while pending:
        step, parent = pending.pop()
        ordered.append((step, parent))
        pending.extend((child, step.step_id) for child in reversed(step.children))
    return ordered


def layout_graph(steps: Sequence[StepView]) -> Graph:
    """Columns by dependency depth, left to right; a continuation's steps go right of their parent."""
    flat = flatten(steps)
    truncated = len(flat) > MAX_DRAWN_STEPS
    flat = flat[:MAX_DRAWN_STEPS]
    column: dict[str, int] = {}
    rows_used: dict[int, int] = {}
    nodes: list[Node] = []
    for step, parent in flat:
        depth = column[parent] + 1 if parent in column else 0
        for dependency in step.depends_on:
            if dependency in column:
                depth = max(depth, column[dependency] + 1)
        column[step.step_id] = depth
        row = rows_used.get(depth, 0)
        rows_used[depth] = row + 1
        x = MARGIN + depth * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        nodes.append(Node(step=step, x=x, y=y, continuation_of=parent))
    where = {node.step.step_id: node for node in nodes}
    edges: list[Edge] = []
    for node in nodes:
        sources = [(dep, False) for dep in node.step.depends_on]
        # A sub-graph hangs from the step that returned it by its first steps only (the rest
        # follow from those through ordinary edges).
        if node.continuation_of is not None and not any(dep in where for dep in node.step.depends_on):
            sources.append((node.continuation_of, True))
        for source_id, continuation in sources:
            source = where.get(source_id)
            if source is not None:
                edges.append(Edge(path=_curve(source, node), continuation=continuation))
    width = max((node.x for node in nodes), default=0) + NODE_WIDTH + MARGIN
    height = max((node.y for node in nodes), default=0) + NODE_HEIGHT + MARGIN
    return Graph(tuple(nodes), tuple(edges), width, height, truncated)


def _curve(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    bend = max(20, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


@dataclass(frozen=True)
class Bar:
    step: StepView
    y: int
    x: float
    width: float
    running: bool  # started, not finished: drawn up to "now"


@dataclass(frozen=True)
class Timeline:
    bars: tuple[Bar, ...]
    width: int
    height: int
    span: float  # seconds from the first start to the last end
    ticks: tuple[tuple[float, str], ...]  # (x, label)
    truncated: bool


def layout_timeline(steps: Sequence[StepView], now: float) -> Timeline:
    """One row per step that started, a bar from its start to its end (or to now while running)."""
    flat = [step for step, _ in flatten(steps) if step.start is not None]
    truncated = len(flat) > MAX_DRAWN_STEPS
    flat = sorted(flat, key=lambda step: step.start or 0.0)[:MAX_DRAWN_STEPS]
    if not flat:
        return Timeline((), TIMELINE_WIDTH, 0, 0.0, (), truncated)
    first = min(step.start or 0.0 for step in flat)
    ends = [_end(step, now) for step in flat]
    span = max(max(ends) - first, 1e-3)
    plot = TIMELINE_WIDTH - TIMELINE_LABEL_WIDTH - MARGIN
    scale = plot / span
    bars = []
    for index, (step, end) in enumerate(zip(flat, ends, strict=True)):
        x = TIMELINE_LABEL_WIDTH + ((step.start or first) - first) * scale
        bars.append(
            Bar(
                step=step,
                y=MARGIN + 18 + index * TIMELINE_ROW,
                x=x,
                width=max(2.0, (end - (step.start or first)) * scale),
                running=step.duration is None,
            )
        )
    ticks = tuple(
        (TIMELINE_LABEL_WIDTH + plot * fraction, format_seconds(span * fraction) if fraction else "0")
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    height = MARGIN * 2 + 18 + len(bars) * TIMELINE_ROW
    return Timeline(tuple(bars), TIMELINE_WIDTH, height, span, ticks, truncated)


def _end(step: StepView, now: float) -> float:
    start = step.start or now
    return start + step.duration if step.duration is not None else max(now, start)


def format_seconds(seconds: float | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 05 s, 2 h 10 min."""
    if seconds is None:
        return "—"
    if seconds < 0.001:
        return "< 1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
