"""Registers the built-in executors through the ordinary executor hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from durably.hookspecs import hookimpl


def _ray_executor() -> Any:
    from durably.executors._ray import RayExecutor

    return RayExecutor()


def _local_executor() -> Any:
    from durably.executors._local import LocalExecutor

    return LocalExecutor()


@hookimpl
def durably_executors() -> Mapping[str, Callable[[], Any]]:
    return {"ray": _ray_executor, "local": _local_executor}
