"""The floor: the same workloads as plain Ray tasks and a plain Ray actor, with no durability at all.

With ``--record`` (the ``ray+fsync`` row) every task and actor call also writes its result to a
new file and fdatasyncs it before returning: the least any framework that makes each step durable
on this disk must add to plain Ray (no codec, no index, no status, no folder sync).
"""

# The libraries' step decorators are untyped (or not installed where mypy runs).
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any, TypeVar

import ray
from _harness import (
    MANY_CHAIN,
    Implementation,
    Measured,
    actor_calls,
    init_ray,
    latency_figures,
    main,
    many_figures,
    ray_finish_times,
)

#: The environment variable that tells Ray's workers where ``--record`` writes (unset: no writes).
RECORD_DIR = "BENCH_RECORD_DIR"
T = TypeVar("T")


def _recorded(value: T) -> T:
    """``value``, first written to a new file and fdatasynced when this run records (``--record``)."""
    folder = os.environ.get(RECORD_DIR)
    if folder:
        # A random name: each remote function is pickled by value with its own module globals.
        name = os.path.join(folder, uuid.uuid4().hex)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, repr(value).encode())
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return value


@ray.remote
def inc(x: int) -> int:
    return _recorded(x + 1)


@ray.remote
def gather(*values: int) -> int:
    return _recorded(sum(values))


@ray.remote
def loop(i: int, n: int) -> Any:
    # Tail call as a nested task: return the next task's ref; the driver follows the refs.
    return _recorded(i) if i >= n else loop.remote(_recorded(i) + 1, n)


@ray.remote
def leaf(n: int) -> int:
    return _recorded(n)


@ray.remote
def add(a: int, b: int) -> int:
    return _recorded(a + b)


@ray.remote
def stamp(_: int) -> float:
    return time.time()


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return _recorded(self.n)


def _fib_tree(n: int) -> Any:
    # Plain Ray has no continuations, so the floor builds fib's call tree up front: the same
    # 2·fib(n+1)-1 tasks the dynamic version runs, at the lowest cost Ray can run them.
    return leaf.remote(n) if n <= 1 else add.remote(_fib_tree(n - 1), _fib_tree(n - 2))


class PlainRay(Implementation):
    def __init__(self, record: bool) -> None:
        self.record = record

    def version(self) -> str:
        return f"ray {ray.__version__}"

    def start(self, storage_url: str) -> None:
        if not self.record:
            init_ray(ray)
            return
        folder = storage_url.removeprefix("file://")
        os.makedirs(folder, exist_ok=True)
        init_ray(ray, runtime_env={"env_vars": {RECORD_DIR: folder}})

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

    def run_actor(self, n: int, run_id: str) -> Measured:
        started = time.perf_counter()
        counter = Counter.remote()  # type: ignore[attr-defined]
        ray.get(counter.incr.remote())  # the first call waits for the actor's process
        return actor_calls(started, n, lambda: ray.get(counter.incr.remote()))

    # The durably backend workload is a chain on a chosen storage; its floor is the same chain.
    run_backend = run_chain

    def run_many(self, n: int, run_id: str) -> Measured:
        submitted: list[float] = []
        refs: list[Any] = []
        for _ in range(n):
            submitted.append(time.perf_counter())
            ref = inc.remote(0)
            for _ in range(MANY_CHAIN - 1):
                ref = inc.remote(ref)
            refs.append(ref)
        values, finished = ray_finish_times(ray, refs)
        return Measured(sum(values), many_figures(submitted, finished))

    def run_latency(self, n: int, run_id: str) -> Measured:
        first_step: list[float] = []
        end_to_end: list[float] = []
        for index in range(n):
            wall, started = time.time(), time.perf_counter()
            body_started = ray.get(stamp.remote(index))
            end_to_end.append(time.perf_counter() - started)
            first_step.append(body_started - wall)
        return Measured(n, {**latency_figures("first_step_", first_step), **latency_figures("", end_to_end)})


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record", action="store_true", help="write and fdatasync each result to a file (the ray+fsync row)"
    )


if __name__ == "__main__":
    main(lambda args: PlainRay(args.record), _arguments)
