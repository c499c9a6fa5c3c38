"""Geometry of the step graph and the timeline that the workflow page draws."""

from __future__ import annotations

from durably.inspect import StepView
from durably_ui._layout import MAX_DRAWN_STEPS, layout_graph, layout_timeline


def step(
    step_id: str,
    *depends_on: str,
    children: tuple[StepView, ...] = (),
    start: float | None = None,
    duration: float | None = None,
) -> StepView:
    return StepView(
        step_id=step_id,
        name=step_id,
        status="SUCCESSFUL" if duration is not None else "PENDING",
        attempts=1,
        start=start,
        duration=duration,
        metadata={},
        depends_on=depends_on,
        children=children,
        error=None,
    )


def columns(steps: tuple[StepView, ...]) -> dict[str, int]:
    graph = layout_graph(steps)
    return {node.step.step_id: node.x for node in graph.nodes}


def test_a_step_is_right_of_the_steps_it_consumes() -> None:
    x = columns((step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")))
    assert x["a"] < x["b"] == x["c"] < x["d"]


def test_a_continuation_is_right_of_the_step_that_returned_it() -> None:
    inner = (step("c1"), step("c2", "c1"))
    x = columns((step("parent", children=inner),))
    assert x["parent"] < x["c1"] < x["c2"]


def test_a_continuation_hangs_by_its_first_steps_with_dashed_edges() -> None:
    inner = (step("c1"), step("c2", "c1"))
    graph = layout_graph((step("parent", children=inner),))
    assert [edge.continuation for edge in graph.edges] == [True, False]


def test_steps_beyond_the_limit_are_not_drawn_and_it_says_so() -> None:
    chain = tuple(step(f"s{index}") for index in range(MAX_DRAWN_STEPS + 1))
    graph = layout_graph(chain)
    assert (len(graph.nodes), graph.truncated) == (MAX_DRAWN_STEPS, True)


def test_a_10000_deep_continuation_chain_lays_out_without_recursion() -> None:
    deepest = step("s0")
    for index in range(1, 10_000):
        deepest = step(f"s{index}", children=(deepest,))
    assert len(layout_graph((deepest,)).nodes) == MAX_DRAWN_STEPS


def test_timeline_bars_are_placed_by_start_and_sized_by_duration() -> None:
    timeline = layout_timeline(
        (step("a", start=100.0, duration=1.0), step("b", "a", start=101.0, duration=3.0)), now=200.0
    )
    first, second = timeline.bars
    assert first.x < second.x
    assert second.width == 3 * first.width
    assert timeline.span == 4.0


def test_a_running_step_extends_to_now() -> None:
    timeline = layout_timeline((step("a", start=100.0, duration=1.0), step("b", start=100.0)), now=104.0)
    assert timeline.bars[1].running and timeline.bars[1].width == 4 * timeline.bars[0].width
