"""Ray ObjectRefs in and out of steps: stored by value once, restored lazily on a fresh cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import run_child

from durably import workflow


@pytest.fixture
def on_ray(ray_cluster: Any, storage_url: str) -> Any:
    workflow.init(storage=storage_url, executor="ray")
    return workflow


def _hello() -> str:
    return "hello"


@workflow.step
def words() -> list[Any]:
    import ray

    return [ray.remote(_hello).remote(), ray.put("world")]


@workflow.step
def concat(refs: list[Any]) -> str:
    import ray

    return " ".join(ray.get(ref) for ref in refs)


def test_steps_return_and_take_object_refs_nested_in_lists(on_ray: Any) -> None:
    assert concat.step(words.step()).run(workflow_id="words") == "hello world"


def test_stored_output_gives_back_object_refs_with_the_values(on_ray: Any) -> None:
    import ray

    concat.step(words.step()).run(workflow_id="stored-words")
    refs = on_ray.get_output("stored-words", name="words")
    assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
    assert ray.get(refs) == ["hello", "world"]


@workflow.step
def share(ref_holder: list[Any]) -> dict[str, Any]:
    return {"again": ref_holder[0], "and again": ref_holder[0]}


@workflow.step
def make_shared() -> list[Any]:
    import ray

    return [ray.put("x" * 100_000)]


def test_an_object_shared_by_several_steps_is_stored_once(on_ray: Any) -> None:
    share.step(make_shared.step()).run(workflow_id="shared")
    from durably._api import storage

    objects = [key for key in storage().list("workflows/shared") if "/objects/" in key]
    assert len(objects) == 1


@workflow.step
def length_of(ref_holder: dict[str, Any]) -> int:
    import ray

    return len(ray.get(ref_holder["data"]))


def test_object_ref_arguments_are_stored_by_value(on_ray: Any) -> None:
    import ray

    ref = ray.put(b"12345")
    assert length_of.step({"data": ref}).run(workflow_id="arg-ref") == 5
    from durably._api import storage

    assert len([key for key in storage().list("workflows/arg-ref") if "/objects/" in key]) == 1


RESUME_ON_NEW_CLUSTER = """
import ray
from durably import workflow
workflow.init(storage={storage!r}, executor="ray", ray_address="local")
refs = workflow.get_output("stored-words", name="words")
print("|".join(ray.get(refs)))
"""


@pytest.mark.needs_persistent_storage
def test_object_refs_are_restored_on_a_fresh_cluster(on_ray: Any, storage_url: str) -> None:
    concat.step(words.step()).run(workflow_id="stored-words")
    child = run_child(RESUME_ON_NEW_CLUSTER.format(storage=storage_url), env={"RAY_ADDRESS": ""})
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip().splitlines()[-1] == "hello|world"


SIZE = 200 * 1024 * 1024


def _big_array() -> Any:
    import numpy

    return numpy.ones(SIZE, dtype=numpy.uint8)


@workflow.step
def make_big() -> tuple[list[Any], int, int]:
    import os

    import ray

    ref = ray.remote(_big_array).remote()
    ray.wait([ref])
    return [ref], os.getpid(), _high_water_mark(os.getpid())


def _high_water_mark(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@workflow.step
def checksum(result: tuple[list[Any], int, int]) -> tuple[int, int, int]:
    import ray

    refs, pid, before = result
    return int(ray.get(refs[0]).sum()), pid, before


@pytest.mark.needs_persistent_storage
def test_large_object_is_checkpointed_within_twice_its_size(on_ray: Any) -> None:
    total, pid, high_water_before = checksum.step(make_big.step()).run(workflow_id="big")
    assert total == SIZE
    grown = _high_water_mark(pid) - high_water_before
    assert grown <= 2.2 * SIZE, f"the checkpointing worker grew by {grown / SIZE:.2f}x the object size"
    from durably._api import storage

    stored = [key for key in storage().list("workflows/big") if "/objects/" in key]
    assert len(stored) == 1
    assert len(storage().get(stored[0])) > SIZE
