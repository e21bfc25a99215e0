"""Value objects users pass when declaring and pushing jobs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from .durations import DurationLike, to_timedelta
from .errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class Backoff:
    """A per-job retry curve: ``initial * factor ** (attempt - 1)``, capped at ``max``.

    ``jitter`` (full jitter, the default) draws each delay uniformly in
    ``[0, ceiling]`` so a population of failing rows spreads out.
    """

    initial: timedelta
    factor: float = 2
    max: timedelta | None = None
    jitter: bool = True

    def __init__(
        self,
        initial: DurationLike,
        factor: float = 2,
        max: DurationLike | None = None,  # noqa: A002 - the documented name
        jitter: bool = True,
    ) -> None:
        object.__setattr__(self, "initial", to_timedelta(initial, "backoff initial"))
        object.__setattr__(self, "factor", factor)
        cap = None if max is None else to_timedelta(max, "backoff max")
        object.__setattr__(self, "max", cap)
        object.__setattr__(self, "jitter", bool(jitter))


@dataclasses.dataclass(frozen=True)
class Retry:
    """``retries`` extra attempts after the first; ``when(error)`` may veto one."""

    retries: int
    when: Callable[[BaseException], bool] | None = None
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise InvalidArgumentError(
                f"Retry(retries) must be a whole number, got {self.retries!r}"
            )
        if self.retries < 0:
            raise InvalidArgumentError(
                f"Retry(retries) must be 0 or more, got {self.retries}"
            )
        if self.when is not None and not callable(self.when):
            raise InvalidArgumentError("Retry(when=...) must be a callable")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


Days = float | Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Rule:
    """Keep the newest ``last`` rows, and rows completed in the last ``days``."""

    last: int | None = None
    days: Days | None = None

    def days_now(self) -> float | None:
        """``days`` evaluated now; ``None`` when absent or not a positive number."""
        value = self.days() if callable(self.days) else self.days
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) and value > 0 else None

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.last is not None:
            shown["last"] = self.last
        days = self.days_now()
        if days is not None:
            shown["days"] = int(days) if days == int(days) else days
        return shown


RuleLike = Rule | Literal[False] | None


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long terminal rows are kept; ``False`` means never recorded.

    ``error`` also governs cancelled rows.
    """

    ok: RuleLike = None
    error: RuleLike = None


@dataclasses.dataclass(frozen=True)
class PushItem:
    """One item of :meth:`Job.push_many` with its own key, delay or start time."""

    payload: Any
    key: str | None = None
    delay: DurationLike | None = None
    scheduled_at: datetime | None = None

    def __init__(
        self,
        payload: Any,
        *,
        key: str | None = None,
        delay: DurationLike | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "scheduled_at", scheduled_at)
