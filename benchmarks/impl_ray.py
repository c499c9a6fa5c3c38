"""The floor: the same workloads as plain Ray tasks and a plain Ray actor, with no durability at all."""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import ray
from _harness import Implementation, main


@ray.remote
def inc(x: int) -> int:
    return x + 1


@ray.remote
def gather(*values: int) -> int:
    return sum(values)


@ray.remote
def loop(i: int, n: int) -> Any:
    # Tail call as a nested task: return the next task's ref; the driver follows the refs.
    return i if i >= n else loop.remote(i + 1, n)


@ray.remote
def leaf(n: int) -> int:
    return n


@ray.remote
def add(a: int, b: int) -> int:
    return a + b


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


def _fib_tree(n: int) -> Any:
    # Plain Ray has no continuations, so the floor builds fib's call tree up front: the same
    # 2·fib(n+1)-1 tasks the dynamic version runs, at the lowest cost Ray can run them.
    return leaf.remote(n) if n <= 1 else add.remote(_fib_tree(n - 1), _fib_tree(n - 2))


class PlainRay(Implementation):
    def version(self) -> str:
        return f"ray {ray.__version__}"

    def start(self, storage_url: str) -> None:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)

    def stop(self) -> None:
        ray.shutdown()

    def run_chain(self, n: int, run_id: str) -> int:
        ref = inc.remote(0)
        for _ in range(n - 1):
            ref = inc.remote(ref)
        return int(ray.get(ref))

    def run_fanout(self, n: int, run_id: str) -> int:
        return int(ray.get(gather.remote(*[inc.remote(i) for i in range(n)])))

    def run_loop(self, n: int, run_id: str) -> int:
        value = ray.get(loop.remote(1, n))
        while isinstance(value, ray.ObjectRef):
            value = ray.get(value)
        return int(value)

    def run_fib(self, n: int, run_id: str) -> int:
        return int(ray.get(_fib_tree(n)))

    def run_actor(self, n: int, run_id: str) -> int:
        counter = Counter.remote()  # type: ignore[attr-defined]
        value = 0
        for _ in range(n):
            value = ray.get(counter.incr.remote())
        return value

    # The durably backend workload is a chain on a chosen storage; its floor is the same chain.
    run_backend = run_chain


if __name__ == "__main__":
    main(lambda args: PlainRay())
