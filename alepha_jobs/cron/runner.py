"""One cron tick or trigger (SPEC §6.2-§6.4): instant claim, in-process guard,
run lock, then an inline run or a synthetic outbox row.

The instant claim makes a scheduled instant run once across every process that
shares the lock store; the run lock keeps a manual trigger on one process from
overlapping a run on another; the in-process guard keeps two runs of one job in
this process apart, even with ``lock=False``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import clock, logcapture
from ..context import AbortSignal, JobContext
from ..definition import JobDefinition
from ..events import JobEvent
from ..execution import error_message
from ..locks.base import LockStore, owner_of
from ..store.base import NewExecution, Status, TerminalRun

if TYPE_CHECKING:
    from ..app import Jobs

logger = logging.getLogger(__name__)

KEY_PREFIX = "alepha.api.jobs.cron:"
DEFAULT_LOCK_TTL = timedelta(minutes=5)
SCHEDULED_BY = ("system", "system (cron)")


def lock_ttl(definition: JobDefinition) -> timedelta:
    """Cron lock and instant TTL: ``2 × timeout``, else 5 minutes."""
    return 2 * definition.timeout if definition.timeout else DEFAULT_LOCK_TTL


class CronRunner:
    """Runs cron jobs for one process, identified by a random holder id."""

    def __init__(self, jobs: Jobs, locks: LockStore) -> None:
        self.jobs = jobs
        self.locks = locks
        self.holder_id = str(uuid.uuid4())
        self._running: set[str] = set()
        self._guard = threading.Lock()

    def tick(
        self,
        definition: JobDefinition,
        instant: datetime | None,
        triggered_by: str | None = None,
        triggered_by_name: str | None = None,
    ) -> bool:
        """Run ``definition`` for ``instant`` (``None``: a manual trigger).

        Return whether this call ran it (or wrote its outbox row). Handler errors
        are recorded, never raised; a dispatch error of the retry path is.
        """
        if self.jobs.stopping:
            if instant is None:  # a caller asked for this run: say why it did not
                logger.warning(
                    "trigger of %s ignored: the runtime is stopping or was stopped",
                    definition.name,
                    extra={"event": "cron.stopped", "job": definition.name},
                )
            return False
        name, ttl = definition.name, lock_ttl(definition)
        if (
            definition.lock
            and instant is not None
            and not self._claim_instant(name, instant, ttl)
        ):
            return False
        if definition.catch_up and instant is not None:
            self._record_instant(name, instant)
        if not self._enter(name, instant):
            return False
        try:
            if definition.lock and not self._acquire(name, ttl):
                logger.debug("%s is running elsewhere; skipped", name)
                return False
            try:
                self._run(definition, instant, triggered_by, triggered_by_name)
                return True
            finally:
                if definition.lock:
                    self._release(name)
        finally:
            with self._guard:
                self._running.discard(name)

    def scheduled(self, name: str, instant: datetime | None = None) -> None:
        """The scheduler's entry point: one tick at the scheduled ``instant``."""
        definition = self.jobs.definition(name)
        if definition is None or instant is None:
            return
        try:
            self.tick(definition, instant.astimezone(clock.UTC), *SCHEDULED_BY)
        except Exception:
            logger.exception(
                "Cron tick failed for %s at %s",
                name,
                clock.to_text(instant),
                extra={"event": "cron.tick_failed", "job": name},
            )

    # the three layers

    def _claim_instant(self, name: str, instant: datetime, ttl: timedelta) -> bool:
        key = f"{KEY_PREFIX}{name}:{clock.to_text(instant)}"
        token = f"{self.holder_id},{uuid.uuid4()}"
        try:
            claimed = self.locks.set(key, token, nx=True, ttl=ttl) == token
        except Exception:
            logger.warning(
                "instant claim of %s failed; running anyway (fail open)",
                name,
                exc_info=True,
                extra={"event": "cron.lock_failed", "job": name},
            )
            return True
        if not claimed:
            logger.debug("%s at %s was claimed elsewhere", name, key)
        return claimed

    def _record_instant(self, name: str, instant: datetime) -> None:
        try:
            self.locks.set(f"{KEY_PREFIX}{name}:last", clock.to_text(instant))
        except Exception:
            logger.warning("recording the last instant of %s failed", name)

    def _enter(self, name: str, instant: datetime | None) -> bool:
        with self._guard:
            if name not in self._running:
                self._running.add(name)
                return True
        if instant is not None:
            logger.warning(
                "%s is still running; the tick at %s is skipped",
                name,
                clock.to_text(instant),
                extra={"event": "cron.overlap", "job": name},
            )
        return False

    def _acquire(self, name: str, ttl: timedelta) -> bool:
        value = f"{self.holder_id},{clock.to_text(clock.now())}"
        try:
            stored = self.locks.set(KEY_PREFIX + name, value, nx=True, ttl=ttl)
        except Exception:
            logger.warning(
                "run lock of %s failed; running anyway (fail open)",
                name,
                exc_info=True,
                extra={"event": "cron.lock_failed", "job": name},
            )
            return True
        return owner_of(stored) == self.holder_id

    def _release(self, name: str) -> None:
        try:
            self.locks.delete_if_owner(KEY_PREFIX + name, self.holder_id)
        except Exception:
            logger.debug("releasing the run lock of %s failed", name, exc_info=True)

    # the run

    def _run(
        self,
        definition: JobDefinition,
        instant: datetime | None,
        triggered_by: str | None,
        triggered_by_name: str | None,
    ) -> None:
        if definition.retry is not None:
            self._enqueue(definition, triggered_by, triggered_by_name)
        else:
            with self.jobs.in_flight():
                InlineCronRun(self.jobs, definition, instant).execute(
                    triggered_by, triggered_by_name
                )

    def _enqueue(
        self,
        definition: JobDefinition,
        triggered_by: str | None,
        triggered_by_name: str | None,
    ) -> None:
        """SPEC §6.4: a ``pending`` row runs through the outbox, with retries."""
        row = NewExecution(
            id=str(uuid.uuid4()),
            job_name=definition.name,
            payload=None,
            max_attempts=definition.max_attempts,
            triggered_by=triggered_by,
            triggered_by_name=triggered_by_name,
        )
        self.jobs.store.insert([row])
        if not self.jobs.stopping:
            self.jobs.dispatcher.dispatch(definition.name, row.id)


class InlineCronRun:
    """A cron run without retry (SPEC §6.3): no row while it runs, one at the end."""

    def __init__(
        self, jobs: Jobs, definition: JobDefinition, instant: datetime | None
    ) -> None:
        self.jobs = jobs
        self.definition = definition
        self.id = str(uuid.uuid4())
        self.started_at = clock.now()
        self.now = instant or self.started_at
        self.signal = AbortSignal()

    def execute(self, triggered_by: str | None, triggered_by_name: str | None) -> None:
        jobs, definition = self.jobs, self.definition
        jobs.signals[self.id] = self.signal
        timer = None
        if definition.timeout:
            timer = jobs.timekeeper.call_at(
                self.started_at + definition.timeout,
                lambda: self.signal.abort("timeout"),
                tag="timeout",
            )
        try:
            with logcapture.capture(jobs.config.log_max_entries) as buffer:
                self._emit("job:begin", now=self.now)
                error = self._call()
                logs = list(buffer)
            self._record(error, logs, triggered_by, triggered_by_name)
        finally:
            if timer is not None:
                timer.cancel()
            jobs.signals.pop(self.id, None)
            self._emit("job:end")

    def _call(self) -> Exception | None:
        ctx: JobContext[None] = JobContext(
            payload=None,
            attempt=1,
            now=self.now,
            signal=self.signal,
            execution_id=self.id,
            job_name=self.definition.name,
            _reschedule=self.jobs.reschedule_intent(self.definition, False, None),
        )
        try:
            self.definition.wrapped_handler()(ctx)
        except Exception as error:
            return error
        return None

    def _record(
        self,
        error: Exception | None,
        logs: list[Any],
        triggered_by: str | None,
        triggered_by_name: str | None,
    ) -> None:
        status: Status = "ok" if error is None else "error"
        if self.definition.retention.records(status):
            run = TerminalRun(
                id=self.id,
                job_name=self.definition.name,
                status=status,
                started_at=self.started_at,
                completed_at=clock.now(),
                error=None if error is None else error_message(error),
                logs=logs,
                triggered_by=triggered_by,
                triggered_by_name=triggered_by_name,
            )
            try:
                self.jobs.store.insert_terminal(run)
            except Exception:
                logger.warning("recording cron run %s failed", self.id, exc_info=True)
        self._log(error)
        if error is None:
            self._emit("job:success")
        else:
            self._emit("job:error", error=error)

    def _log(self, error: Exception | None) -> None:
        extra = {"job": self.definition.name, "execution_id": self.id}
        if error is None:
            logger.info(
                "cron %s succeeded",
                self.definition.name,
                extra={**extra, "event": "cron.succeeded"},
            )
        else:
            logger.error(
                "cron %s failed: %s",
                self.definition.name,
                error_message(error),
                extra={**extra, "event": "cron.failed"},
            )

    def _emit(self, event: str, **fields: Any) -> None:
        self.jobs.events.emit(JobEvent(event, self.definition.name, self.id, **fields))
