"""The durably demo: a small order-processing workflow on the embedded default (local files, local Ray).

Run it twice: the second run finds the finished workflow in storage and returns its output
without running a step again. Delete the storage folder printed below to start over.
"""

from __future__ import annotations

import os
import sys
import tempfile

from durably import workflow

STORAGE = os.environ.get("DURABLY_STORAGE", os.path.join(tempfile.gettempdir(), "durably-demo"))


@workflow.step
def fetch_order(order_id: int) -> dict[str, object]:
    return {"id": order_id, "items": [("book", 12.5), ("pen", 1.25), ("lamp", 30.0)]}


@workflow.step(max_retries=3)
def price(order: dict[str, object]) -> float:
    return round(sum(cost for _, cost in order["items"]), 2)  # type: ignore[attr-defined]


@workflow.step
def tax(amount: float, rate: float) -> float:
    return round(amount * rate, 2)


@workflow.step(name="invoice", metadata={"team": "billing"})
def invoice(order: dict[str, object], amount: float, tax_due: float) -> str:
    return f"order {order['id']}: {amount:.2f} + tax {tax_due:.2f} = {amount + tax_due:.2f}"


@workflow.step
def count_down(n: int) -> int | workflow.Workflow[int]:
    """A dynamic step: it returns another step until it reaches zero (a durable loop)."""
    return n if n == 0 else count_down.step(n - 1)


def main() -> int:
    workflow.init(storage=STORAGE)  # local Ray is started if none is running
    order = fetch_order.step(42)
    amount = price.step(order)
    result = invoice.step(order, amount, tax.step(amount, 0.2)).run(workflow_id="demo-order-42")
    print(result)
    print("status:", workflow.get_status("demo-order-42").value)
    print("invoice step metadata:", workflow.get_metadata("demo-order-42", name="invoice")["user_metadata"])
    print("loop finished at:", count_down.step(50).run(workflow_id="demo-loop"))
    print("stored workflows:", ", ".join(f"{wid}={status.value}" for wid, status in workflow.list_all()))
    print(f"storage: {STORAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
