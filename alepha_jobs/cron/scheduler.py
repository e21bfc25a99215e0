"""APScheduler's BackgroundScheduler drives every periodic task: user cron ticks,
``system.jobs.sweep`` and ``system.jobs.trim``.

Fire times come from :class:`CronExpression` through a small trigger adapter, so
APScheduler only keeps time and never interprets cron syntax itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from .expression import CronExpression

logger = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 30


class ExpressionTrigger(BaseTrigger):
    """An APScheduler trigger whose fire times are :meth:`CronExpression.next`."""

    def __init__(self, expression: CronExpression) -> None:
        self.expression = expression

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        after = previous_fire_time or now - timedelta(microseconds=1)
        return self.expression.next(after)

    def __str__(self) -> str:
        return f"cron[{self.expression.expression}]"


class Scheduler:
    """One BackgroundScheduler with ``coalesce`` and ``max_instances=1`` per task."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
        )

    def add(
        self,
        name: str,
        expression: CronExpression,
        task: Callable[..., Any],
        *args: Any,
    ) -> None:
        """Run ``task(*args)`` at every fire time of ``expression``."""
        self._scheduler.add_job(
            _guarded(name, task),
            ExpressionTrigger(expression),
            args=args,
            id=name,
            name=name,
            replace_existing=True,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _guarded(name: str, task: Callable[..., Any]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            task(*args)
        except Exception:
            logger.exception(
                "periodic task %s failed", name, extra={"event": "cron.task_failed"}
            )

    return run
