"""The backoff curve (SPEC §5.5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from .options import Backoff

MAX_EXPONENT = 30


def backoff_delay(
    attempt: int,
    backoff: Backoff | None,
    *,
    base: timedelta,
    cap: timedelta,
    random: Callable[[], float],
) -> timedelta:
    """The delay before retrying after attempt number ``attempt`` failed.

    The first retry (``attempt`` 1) uses exponent 0. Full jitter draws the delay
    uniformly in ``[0, ceiling]``; without jitter the delay is the ceiling.
    """
    start_ms = _ms(backoff.initial if backoff else base)
    limit_ms = max(start_ms, _ms(backoff.max if backoff and backoff.max else cap))
    factor = backoff.factor if backoff else 2
    exponent = min(max(0, attempt - 1), MAX_EXPONENT)
    ceiling = min(limit_ms, start_ms * factor**exponent)
    jitter = backoff.jitter if backoff else True
    delay_ms = round(random() * ceiling) if jitter else round(ceiling)
    return timedelta(milliseconds=delay_ms)


def _ms(value: timedelta) -> float:
    return max(0.0, value.total_seconds() * 1000)
