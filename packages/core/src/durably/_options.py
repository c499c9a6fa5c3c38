"""Step options: validation at decoration time, so mistakes surface where they are written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from durably._ids import validate_step_name

#: Ray task options a step passes through to ``ray.remote(...).options``.
RAY_TASK_OPTIONS = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "resources",
        "runtime_env",
        "memory",
        "accelerator_type",
        "scheduling_strategy",
        "placement_group",
        "placement_group_bundle_index",
        "placement_group_capture_child_tasks",
        "label_selector",
    }
)


@dataclass(frozen=True)
class StepOptions:
    """How one step runs; see ``workflow.step`` for the meaning of each field."""

    max_retries: int = 3
    retry_exceptions: tuple[type[BaseException], ...] = (Exception,)
    catch_exceptions: bool = False
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    checkpoint: bool = True
    retry_delay: float = 0.05
    max_retry_delay: float = 10.0
    ray_options: dict[str, Any] = field(default_factory=dict)

    def merged(self, **changes: Any) -> StepOptions:
        """A copy with ``changes`` applied (validated like the decorator's arguments)."""
        return build_options(self, **changes)

    def attempts_allowed(self) -> int | None:
        """How many times the step may run in all; None means without limit."""
        return None if self.max_retries == -1 else self.max_retries + 1

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (exponential, capped)."""
        return float(min(self.max_retry_delay, self.retry_delay * (2 ** max(0, attempt - 1))))

    def is_retryable(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_exceptions)


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    return dict(metadata)


def _check_retry_exceptions(value: Any) -> tuple[type[BaseException], ...]:
    if value is True:
        return (Exception,)
    if value is False or value is None:
        return ()
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, type) and issubclass(item, BaseException) for item in value
    ):
        raise ValueError(
            "retry_exceptions must be True, False, an exception class or a list of exception classes, "
            f"got {value!r}"
        )
    return tuple(value)


def build_options(base: StepOptions | None = None, **given: Any) -> StepOptions:
    """Validate user-supplied step options on top of ``base``; Ray options go to ``ray_options``."""
    base = base or StepOptions()
    changes: dict[str, Any] = {}
    ray_options = dict(base.ray_options)
    for key, value in given.items():
        if key == "max_retries":
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise ValueError(f"max_retries must be an int >= 0, or -1 for no limit, got {value!r}")
            changes[key] = value
        elif key == "retry_exceptions":
            changes[key] = _check_retry_exceptions(value)
        elif key == "metadata":
            changes[key] = _check_metadata(value)
        elif key == "name":
            changes[key] = None if value is None else validate_step_name(value)
        elif key in ("catch_exceptions", "checkpoint"):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be True or False, got {value!r}")
            changes[key] = value
        elif key in ("retry_delay", "max_retry_delay"):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a number of seconds >= 0, got {value!r}")
            changes[key] = float(value)
        elif key in RAY_TASK_OPTIONS:
            ray_options[key] = value
        else:
            known = sorted({*StepOptions.__dataclass_fields__} - {"ray_options"} | RAY_TASK_OPTIONS)
            raise ValueError(f"unknown step option {key!r}; known options: {', '.join(known)}")
    return replace(base, ray_options=ray_options, **changes)
