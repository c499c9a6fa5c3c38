"""Steps of the workflows the ui tests show (pickled by value: the dashboard's process resumes them)."""

from __future__ import annotations

import os
from typing import Any

from durably import workflow


@workflow.step
def fetch(order: int) -> dict[str, int]:
    return {"order": order, "items": 3}


@workflow.step
def price(order: dict[str, int]) -> int:
    return order["items"] * 10


@workflow.step
def check_stock(marker: str, order: dict[str, int]) -> dict[str, int]:
    """Fails until ``marker`` exists: a failure that a resume after the fix gets past."""
    if not os.path.exists(marker):
        raise RuntimeError(f"warehouse offline (no {marker})")
    return order


@workflow.step
def ship(order: dict[str, int], total: int) -> str:
    return f"order {order['order']} shipped, {total} EUR"


def order_workflow(marker: str, number: int = 7) -> Any:
    """fetch -> (price, check_stock) -> ship: a small graph with a fan-out and a join."""
    order = fetch.step(number)
    return ship.step(check_stock.step(marker, order), price.step(order))


@workflow.step
def plan(count: int) -> Any:
    """Returns a sub-graph (a continuation): the dashboard draws it beside the step."""
    total = price.step(fetch.step(count))
    return ship.step(fetch.step(count), total)


@workflow.step
def greet(event: Any) -> str:
    return f"hello {event['name']}"


@workflow.step(name="<i>bold step<i>", metadata={"note": "<script>alert('step')</script>"})
def hostile(message: str) -> None:
    raise ValueError(message)


@workflow.virtual_actor
class Cart:
    """A virtual actor the actors pages show: its calls and its state."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)

    @workflow.virtual_actor.readonly
    def count(self) -> int:
        return len(self.items)
