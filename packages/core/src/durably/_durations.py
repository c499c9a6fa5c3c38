"""Durations as users write them (``"30d"``, seconds, a timedelta), parsed to seconds.

Importable from anywhere: ``init``/``run`` parse a retention with it before anything is stored,
and ``durably gc --older-than`` its limit.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")

#: A duration as ``init(retention=...)``, ``run(..., retention=...)`` and ``gc --older-than`` take it.
Duration = timedelta | float | int | str


def parse_duration(value: Duration, what: str = "retention") -> float:
    """Seconds in ``value``: a timedelta, a number of seconds, or text such as ``"30d"``, ``"1h30m"``.

    Units: s, m, h, d, w. Raises ValueError naming ``what`` and the forms accepted.
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if parts and _DURATION.sub("", text).strip() == "":
                seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds is None or seconds != seconds or seconds < 0:  # NaN is not a duration
        raise ValueError(
            f"{what} must be a duration: a timedelta, seconds (a number >= 0), or text such as "
            f"'30d', '12h', '1h30m' (units s, m, h, d, w); got {value!r}"
        )
    return seconds


def optional_duration(value: Duration | None, what: str) -> float | None:
    """``parse_duration`` that lets None (no limit) through."""
    return None if value is None else parse_duration(value, what)
