"""Effective retention (SPEC §5.6): what a job keeps, resolved once at registration."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from .options import Retention, Rule, RuleLike

Cadence = Literal["frequent", "hourly", "daily", "slower"]
CADENCE_SAMPLES = 10
_CADENCES: list[tuple[timedelta, Cadence, int]] = [
    (timedelta(minutes=15), "frequent", 12),
    (timedelta(minutes=60), "hourly", 24),
    (timedelta(days=1), "daily", 7),
]
_SLOWER_KEEP = 5


@dataclasses.dataclass(frozen=True)
class Limit:
    """What the trim enforces for one (job, status): ``None`` fields are unlimited."""

    last: int | None
    days: float | None
    keep_newest: bool


@dataclasses.dataclass(frozen=True)
class EffectiveRetention:
    """The rules a job's terminal rows follow, and where each came from."""

    ok: Rule | Literal[False]
    error: Rule | Literal[False] | None  # None: the live default error window
    source_ok: Literal["job", "default"]
    source_error: Literal["job", "default"]
    cadence: Cadence | None
    kind: Literal["cron", "queue"]

    def records(self, status: str) -> bool:
        """Whether rows ending in ``status`` are kept at all."""
        rule = self.ok if status == "ok" else self.error
        return rule is not False

    def rule(self, status: str, error_days: int) -> Rule | Literal[False]:
        rule = self.ok if status == "ok" else self.error
        return Rule(days=error_days) if rule is None else rule

    def limit(self, status: str, error_days: int, max_rows: int) -> Limit | None:
        """The trim limit for ``status``; ``None`` means delete every row."""
        rule = self.rule(status, error_days)
        if rule is False:
            return None
        source = self.source_ok if status == "ok" else self.source_error
        last = rule.last
        if source == "default":
            last = max_rows if last is None else min(last, max_rows)
        return Limit(last, rule.days_now(), keep_newest=self.kind == "cron")

    def describe(self, error_days: int) -> dict[str, Any]:
        """The admin view: ``{ok, error, source, cadence?}`` with days evaluated now."""
        shown: dict[str, Any] = {}
        for status in ("ok", "error"):
            rule = self.rule(status, error_days)
            shown[status] = False if rule is False else rule.describe()
        shown["source"] = {"ok": self.source_ok, "error": self.source_error}
        if self.cadence is not None:
            shown["cadence"] = self.cadence
        return shown


def resolve(
    retention: Retention | None,
    kind: Literal["cron", "queue"],
    fire_times: Sequence[datetime] = (),
) -> EffectiveRetention:
    """Combine a job's declared retention with the defaults for its kind and cadence."""
    declared = retention or Retention()
    cadence, keep = _cadence(fire_times) if kind == "cron" else (None, 0)
    default_ok: Rule | Literal[False] = Rule(last=keep) if cadence else False
    return EffectiveRetention(
        ok=default_ok if declared.ok is None else declared.ok,
        error=declared.error,
        source_ok="default" if declared.ok is None else "job",
        source_error="default" if declared.error is None else "job",
        cadence=cadence,
        kind=kind,
    )


def _cadence(fire_times: Sequence[datetime]) -> tuple[Cadence, int]:
    gaps = [
        later - earlier
        for earlier, later in zip(fire_times, fire_times[1:], strict=False)
    ]
    shortest = min(gaps, default=timedelta.max)
    for threshold, cadence, keep in _CADENCES:
        if shortest <= threshold:
            return cadence, keep
    return "slower", _SLOWER_KEEP


def check_rule(job: str, status: str, rule: RuleLike) -> str | None:
    """The registration error for one retention rule, or ``None`` (SPEC §1.2 #10)."""
    if rule is None or rule is False:
        return None
    if not isinstance(rule, Rule):
        return (
            f"Job '{job}': retention.{status} must be a Rule(last=..., days=...) "
            f"or False, got {rule!r}"
        )
    if rule.last is None and rule.days is None:
        return f"Job '{job}': retention.{status} has neither 'last' nor 'days'"
    last = rule.last
    if last is not None and (
        isinstance(last, bool) or not isinstance(last, int) or last < 1
    ):
        return f"Job '{job}': retention.{status}.last must be a whole number at least 1"
    days = rule.days
    if days is not None and not callable(days):
        valid = isinstance(days, (int, float)) and not isinstance(days, bool)
        if not valid or not days > 0:
            return f"Job '{job}': retention.{status}.days must be a positive number"
    return None
