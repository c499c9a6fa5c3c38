"""Registers the built-in executors through the ordinary executor hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from durably.hookspecs import hookimpl


@hookimpl
def durably_executors() -> Mapping[str, Callable[[], Any]]:
    return {}
