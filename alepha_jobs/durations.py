"""Durations as users write them: timedelta, seconds, ``"5 min"``, ``(5, "min")``."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Union

from .errors import InvalidArgumentError

DurationLike = Union[timedelta, int, float, str, "tuple[float, str]"]

_UNITS: dict[str, float] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip

_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]+)?\s*$")


def to_timedelta(value: DurationLike, name: str = "duration") -> timedelta:
    """Convert a duration-like value to a non-negative :class:`timedelta`.

    :param value: a timedelta, a number of seconds, text such as ``"30 seconds"``
        or ``"5 min"``, or a ``(number, unit)`` tuple.
    :param name: what the value is, for the error message.
    :raises InvalidArgumentError: the value is malformed or negative.
    """
    seconds = _seconds(value, name)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(
            f"{name} must be a finite duration of zero or more, got {value!r}"
        )
    return timedelta(seconds=seconds)


def to_seconds(value: DurationLike, name: str = "duration") -> float:
    """Like :func:`to_timedelta`, but return seconds as a float."""
    return to_timedelta(value, name).total_seconds()


def _seconds(value: object, name: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise _malformed(value, name)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _parse_text(value, name)
    if isinstance(value, tuple) and len(value) == 2:
        amount, unit = value
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            return float(amount) * _unit(unit, value, name)
    raise _malformed(value, name)


def _parse_text(text: str, name: str) -> float:
    match = _TEXT.match(text)
    if match is None:
        raise _malformed(text, name)
    amount, unit = match.groups()
    return float(amount) * (_unit(unit, text, name) if unit else 1.0)


def _unit(unit: object, value: object, name: str) -> float:
    factor = _UNITS.get(str(unit).lower()) if isinstance(unit, str) else None
    if factor is None:
        raise InvalidArgumentError(
            f"{name}: unknown unit {unit!r} in {value!r}; use one of "
            "ms, seconds, minutes, hours, days, weeks"
        )
    return factor


def _malformed(value: object, name: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{name} must be a timedelta, a number of seconds, text such as '5 min' or "
        f"a tuple such as (5, 'minutes'); got {value!r}"
    )
