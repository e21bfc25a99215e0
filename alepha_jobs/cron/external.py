"""Ticks requested from outside: ``alepha-jobs run-cron`` and the cron route.

An external scheduler names a job and, ideally, the instant it stands for; the
instant claim then makes every caller for that instant but one a no-op.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from .. import clock
from ..errors import JobNotFoundError, JobUsageError
from ..events import JobEvent
from .expression import CronExpression
from .runner import SCHEDULED_BY

if TYPE_CHECKING:
    from ..app import Jobs

HOUSEKEEPING = ("system.jobs.sweep", "system.jobs.trim")


@dataclasses.dataclass(frozen=True)
class TickResult:
    """``ran``: this call ran the job (else another caller had the instant)."""

    name: str
    instant: datetime | None
    ran: bool
    failed: bool = False


def default_instant(expression: CronExpression, now: datetime) -> datetime:
    """The instant an external trigger without one stands for: ``now`` truncated
    to the minute (to the second for six-field expressions)."""
    if expression.has_seconds:
        return now.replace(microsecond=0)
    return now.replace(second=0, microsecond=0)


def run_tick(jobs: Jobs, name: str, instant: datetime | None = None) -> TickResult:
    """Run one tick of cron job ``name`` (or the sweep or trim) for ``instant``.

    :raises JobNotFoundError: no job has that name.
    :raises JobUsageError: it is a queue job.
    """
    if name in HOUSEKEEPING:
        if name.endswith("sweep"):
            jobs.sweep()
        else:
            jobs.trim()
        return TickResult(name, instant, ran=True)
    definition = jobs.definition(name)
    if definition is None:
        raise JobNotFoundError(f"Job not registered: {name}")
    if definition.cron is None:
        raise JobUsageError(f"Job '{name}' is a queue job; only cron jobs tick")
    if instant is None:
        instant = default_instant(definition.cron, clock.now())
    instant = clock.require_aware(instant, "scheduled_at").astimezone(clock.UTC)
    failures: list[JobEvent] = []
    caller = threading.get_ident()

    def listener(event: JobEvent) -> None:
        # An inline cron run reports on the calling thread.
        if event.name == name and threading.get_ident() == caller:
            failures.append(event)

    jobs.events.on("job:error", listener)
    try:
        ran = jobs.cron.tick(definition, instant, *SCHEDULED_BY)
    finally:
        jobs.events.off("job:error", listener)
    return TickResult(name, instant, ran=ran, failed=bool(failures))
