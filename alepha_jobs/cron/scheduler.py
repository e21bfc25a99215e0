"""APScheduler's BackgroundScheduler drives every periodic task: user cron ticks,
``system.jobs.sweep`` and ``system.jobs.trim``.

Fire times come from :class:`CronExpression` through a small trigger adapter, so
APScheduler only keeps time and never interprets cron syntax itself.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as SchedulerJob
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


class InstantExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each due task on its own named daemon thread and hands it the
    *scheduled* fire time (the latest one when ticks were coalesced), which is
    the same in every process."""

    def _do_submit_job(self, job: SchedulerJob, run_times: list[datetime]) -> None:
        instant = run_times[-1]

        def run() -> None:
            try:
                job.func(*job.args, instant=instant)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, [])

        name = f"alepha-jobs-cron-{job.id}"
        threading.Thread(target=run, name=name, daemon=True).start()


class Scheduler:
    """One BackgroundScheduler with ``coalesce`` and ``max_instances=1`` per task."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": InstantExecutor()},
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
        """Run ``task(*args, instant=fire_time)`` at every fire time of
        ``expression``."""
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
        # APScheduler calls its thread "APScheduler"; ours are all alepha-jobs-*.
        self._scheduler._thread.name = "alepha-jobs-scheduler"

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _guarded(name: str, task: Callable[..., Any]) -> Callable[..., None]:
    def run(*args: Any, instant: datetime | None = None) -> None:
        try:
            task(*args, instant=instant)
        except Exception:
            logger.exception(
                "periodic task %s failed", name, extra={"event": "cron.task_failed"}
            )

    return run
