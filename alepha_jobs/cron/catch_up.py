"""``catch_up=True`` (DESIGN §8.4): one coalesced tick at start for a missed instant.

Each instant a catch-up job claims is also recorded, without expiry, under
``<prefix><job>:last`` in the lock store. At start, if the latest instant at or
before now is newer than that record, it runs once through the normal instant
claim, so several processes starting together still run it once. A job with no
record yet only records the baseline: nothing was missed before it existed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import clock
from .expression import CronExpression
from .runner import KEY_PREFIX, SCHEDULED_BY

if TYPE_CHECKING:
    from ..app import Jobs

logger = logging.getLogger(__name__)

_LOOKBACKS = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=366 * 8),
)


def latest_instant(expression: CronExpression, at: datetime) -> datetime | None:
    """The latest fire time at or before ``at`` (within eight years), or ``None``."""
    for lookback in _LOOKBACKS:
        moment = expression.next(at - lookback)
        if moment > at:
            continue
        while True:
            following = expression.next(moment)
            if following > at:
                return moment
            moment = following
    return None


def last_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:last"


def catch_up(jobs: Jobs) -> None:
    """Run one tick for every catch-up job whose latest instant was missed."""
    now = clock.now()
    for definition in jobs.definitions():
        if not definition.catch_up or definition.cron is None:
            continue
        try:
            _catch_up_one(jobs, definition.name, definition.cron, now)
        except Exception:
            logger.exception("catch-up of %s failed", definition.name)


def _catch_up_one(
    jobs: Jobs, name: str, expression: CronExpression, now: datetime
) -> None:
    instant = latest_instant(expression, now)
    if instant is None:
        return
    instant = instant.astimezone(clock.UTC)
    recorded = jobs.locks.get(last_key(name))
    if recorded is not None and recorded >= clock.to_text(instant):
        return
    if recorded is None:
        jobs.locks.set(last_key(name), clock.to_text(instant))
        return
    logger.info(
        "%s missed its run at %s; catching up once",
        name,
        clock.to_text(instant),
        extra={"event": "cron.catch_up", "job": name},
    )
    definition = jobs.definition(name)
    if definition is not None:
        jobs.cron.tick(definition, instant, *SCHEDULED_BY)
