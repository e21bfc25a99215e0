"""Dispatching a row of :class:`~alepha_jobs.app.Jobs`: now, later, or when a
local timer promotes it (SPEC §4.2).

A failed dispatch is logged, never raised: the row is the truth, and the sweep
delivers what a dispatch lost (SPEC §5.2).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import clock
from .errors import DelayNotSupported

if TYPE_CHECKING:
    from .app import Jobs

# The runtime's logger, so that these events keep the name they always had.
logger = logging.getLogger(__name__)

PROMOTION_CEILING = timedelta(hours=24)


def dispatch_safe(jobs: Jobs, job_name: str, execution_id: str) -> None:
    """Dispatch now, logging instead of raising (the row is the truth)."""
    if jobs._stopping:
        return
    try:
        jobs.dispatcher.dispatch(job_name, execution_id)
    except Exception:
        logger.warning(
            "dispatch of %s failed; the sweep will deliver it",
            execution_id,
            exc_info=True,
            extra={"event": "dispatch.failed", "job": job_name},
        )


def dispatch_at(jobs: Jobs, job_name: str, execution_id: str, when: datetime) -> None:
    """A delayed dispatch; a transport that declines falls back to a timer."""
    if jobs._stopping:
        return
    delay = (when - clock.now()).total_seconds()
    if delay <= 0:
        jobs.dispatch_safe(job_name, execution_id)
        return
    try:
        jobs.dispatcher.dispatch(job_name, execution_id, delay)
    except DelayNotSupported:
        logger.debug("delay declined for %s; local timer instead", execution_id)
        jobs.schedule_local_promotion(job_name, execution_id, delay)
    except Exception:
        logger.warning(
            "delayed dispatch of %s failed; the sweep will deliver it",
            execution_id,
            exc_info=True,
            extra={"event": "dispatch.failed", "job": job_name},
        )


def schedule_local_promotion(
    jobs: Jobs, job_name: str, execution_id: str, delay_seconds: float
) -> None:
    """Arm a timer that promotes the row when due (SPEC §4.2); beyond 24 h the
    sweep delivers it instead."""
    delay = timedelta(seconds=max(0.0, delay_seconds))
    if delay > PROMOTION_CEILING or not jobs._started or jobs._stopping:
        return
    timer = jobs.timekeeper.call_at(
        clock.now() + delay,
        lambda: jobs.dispatch_scheduled(job_name, execution_id),
        tag="promotion",
    )
    with jobs._state:
        jobs._promotions[execution_id] = timer


def forget_promotion(jobs: Jobs, execution_id: str) -> None:
    """Disarm the local timer of a row that left ``scheduled`` (a cancel)."""
    with jobs._state:
        timer = jobs._promotions.pop(execution_id, None)
    if timer is not None:
        timer.cancel()


def dispatch_scheduled(jobs: Jobs, job_name: str, execution_id: str) -> None:
    """Promote a due ``scheduled`` row (T6) and dispatch it; re-arm if early."""
    with jobs._state:
        jobs._promotions.pop(execution_id, None)
    if jobs._stopping:
        return
    if jobs.store.promote(execution_id, clock.now(), due_only=True):
        jobs.dispatch_safe(job_name, execution_id)
        return
    row = jobs.store.get(execution_id)
    if row is None or row.status != "scheduled" or row.scheduled_at is None:
        return
    remaining = (row.scheduled_at - clock.now()).total_seconds()
    jobs.schedule_local_promotion(job_name, execution_id, max(remaining, 0.001))
