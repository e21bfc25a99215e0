"""The reconciliation sweep (SPEC §5.1-§5.3): three phases, one per live status.

Each phase selects a bounded, ordered batch and moves every row it acts on out of
its status (or re-stamps it), so a backlog drains over successive ticks. Phases
fail independently; per-row errors are contained.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import clock
from .events import JobEvent
from .execution import UNSTARTED_NOTE, crash_message, handle_failure
from .store.base import Due, Execution

if TYPE_CHECKING:
    from .app import Jobs
    from .definition import JobDefinition

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """How many rows each phase acted on in one sweep."""

    promoted: int = 0
    redispatched: int = 0
    never_claimed: int = 0
    recovered: int = 0


def sweep(jobs: Jobs) -> SweepReport:
    """Run the three phases once with one shared ``now``."""
    now = clock.now()
    limit = jobs.config.sweep_batch_size
    counts: dict[str, int] = {}
    for name, phase in _PHASES:
        try:
            counts.update(phase(jobs, now, limit))
        except Exception:
            logger.exception(
                "sweep phase %s failed; the other phases still run",
                name,
                extra={"event": "sweep.phase_failed", "phase": name},
            )
    return SweepReport(**counts)


def _batch(
    jobs: Jobs, phase: str, rows: list[Due], limit: int
) -> list[tuple[Due, JobDefinition]]:
    if len(rows) >= limit:
        logger.info(
            "sweep phase %s filled its batch of %d; the rest waits for the next tick",
            phase,
            limit,
            extra={"event": "sweep.batch_full", "phase": phase},
        )
    known = []
    for row in rows:
        definition = jobs.definition(row.job_name)
        if definition is not None:
            known.append((row, definition))
    return known


def _promote_due(jobs: Jobs, now: datetime, limit: int) -> dict[str, int]:
    promoted = 0
    due = jobs.store.due_scheduled(now, limit)
    for row, _ in _batch(jobs, "promote-due", due, limit):
        try:
            moved = jobs.store.promote(row.id, now, due_only=False)
        except Exception:
            logger.warning("promoting %s failed", row.id, exc_info=True)
            continue
        if moved:
            promoted += 1
            jobs.dispatch_safe(row.job_name, row.id)
    return {"promoted": promoted}


def _redispatch_stale(jobs: Jobs, now: datetime, limit: int) -> dict[str, int]:
    cutoff = now - jobs.config.stale_threshold
    stale = jobs.store.stale_pending(cutoff, limit)
    rows = _batch(jobs, "redispatch-stale", stale, limit)
    redispatched = never = 0
    for row, definition in rows:
        try:
            if row.redispatch_count >= jobs.config.max_redispatch:
                never += _never_claimed(jobs, row, definition, now)
            elif jobs.store.bump_redispatch(row.id, now):
                redispatched += 1
                jobs.dispatch_safe(row.job_name, row.id)
        except Exception:
            logger.warning("re-dispatching %s failed", row.id, exc_info=True)
    return {"redispatched": redispatched, "never_claimed": never}


def _never_claimed(
    jobs: Jobs, row: Due, definition: JobDefinition, now: datetime
) -> int:
    count = row.redispatch_count
    message = (
        f"Never claimed after {count} sweep re-dispatch(es) "
        "(config.max_redispatch); check that a started runtime consumes this job"
    )
    logger.warning(
        "%s %s: %s",
        row.job_name,
        row.id,
        message,
        extra={"event": "sweep.never_claimed", "job": row.job_name},
    )
    keep = definition.retention.records("error")
    if not jobs.store.fail(row.id, now, message, None, keep, from_status="pending"):
        return 0
    error = RuntimeError(message)
    jobs.events.emit(JobEvent("job:error", row.job_name, row.id, error=error))
    return 1


def _recover_crashed(jobs: Jobs, now: datetime, limit: int) -> dict[str, int]:
    cutoff = now - _shortest_threshold(jobs)
    rows = _batch(jobs, "recover-crashed", jobs.store.running(cutoff, limit), limit)
    recovered = 0
    for row, definition in rows:
        threshold = definition.crash_threshold(jobs.config.run_timeout)
        if not _crashed(jobs, row, now, threshold):
            continue
        try:
            if row.started_at is None and _refund(jobs, row, now):
                recovered += 1
                continue
            error = RuntimeError(crash_message(row, threshold.total_seconds()))
            logger.warning(
                "%s %s: %s",
                row.job_name,
                row.id,
                error,
                extra={"event": "sweep.recovered", "job": row.job_name},
            )
            handle_failure(jobs, definition, _as_execution(row, now), error, None)
            recovered += 1
        except Exception:
            logger.warning("recovering %s failed", row.id, exc_info=True)
    return {"recovered": recovered}


def _refund(jobs: Jobs, row: Due, now: datetime) -> bool:
    """A batch-claimed row never recorded as started: back to ``pending``
    without using an attempt, the first time only (a handler that kills its
    process keeps using attempts)."""
    if not jobs.store.release_crashed(row.id, now, UNSTARTED_NOTE):
        return False
    logger.warning(
        "%s %s: %s",
        row.job_name,
        row.id,
        UNSTARTED_NOTE,
        extra={"event": "sweep.released", "job": row.job_name},
    )
    jobs.dispatch_safe(row.job_name, row.id)
    return True


def _crashed(jobs: Jobs, row: Due, now: datetime, threshold: timedelta) -> bool:
    if row.id in jobs.signals:
        return False  # alive in this process
    moments = [m for m in (row.started_at, row.updated_at) if m is not None]
    return bool(moments) and now - max(moments) > threshold


def _shortest_threshold(jobs: Jobs) -> timedelta:
    run_timeout = jobs.config.run_timeout
    thresholds = [d.crash_threshold(run_timeout) for d in jobs.definitions()]
    return min(thresholds, default=run_timeout)


def _as_execution(row: Due, now: datetime) -> Execution:
    return Execution(
        id=row.id,
        job_name=row.job_name,
        status="running",
        created_at=now,
        updated_at=row.updated_at or now,
        attempt=row.attempt,
        started_at=row.started_at,
    )


_PHASES: list[tuple[str, Callable[[Jobs, datetime, int], dict[str, int]]]] = [
    ("promote-due", _promote_due),
    ("redispatch-stale", _redispatch_stale),
    ("recover-crashed", _recover_crashed),
]
