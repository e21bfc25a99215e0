"""Running one outbox execution (SPEC §4.5): claim, lease, handler, outcome."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import clock, logcapture
from .context import AbortSignal, JobContext
from .definition import JobDefinition
from .dispatch.direct import DirectDispatcher
from .errors import InvalidStateError
from .events import JobEvent
from .lease import beat_interval
from .retry import backoff_delay
from .store.base import Execution

if TYPE_CHECKING:
    from .app import Jobs

logger = logging.getLogger(__name__)


def error_message(error: BaseException) -> str:
    """What the ``error`` column stores for a failure."""
    return str(error) or type(error).__name__


def process(jobs: Jobs, job_name: str, execution_id: str, inline: bool = False) -> None:
    """Claim and run one execution; the dispatcher entry point.

    :raises InvalidStateError: ``inline`` and the row could not be claimed.
    :raises Exception: ``inline`` and the handler failed (after recording it).
    """
    definition = jobs.definition(job_name)
    if definition is None or (definition.kind == "cron" and not definition.retry):
        logger.warning(
            "execution %s names %r, which has no outbox path here; ignored",
            execution_id,
            job_name,
            extra={"event": "execution.unknown_job", "job": job_name},
        )
        return
    if jobs.stopping and not inline:
        # SPEC §5.8: a delivery taken after shutdown began leaves the row pending.
        logger.debug("stopping: %s left for the next runtime", execution_id)
        return
    with jobs.in_flight():
        row = jobs.store.claim(execution_id, clock.now())
        if row is None:
            _claim_missed(jobs, execution_id, inline)
            return
        Run(jobs, definition, row, inline).execute()


class Pace:
    """How long each job's handler took lately, to batch only quick ones.

    A batch holds its later rows ``running`` while the earlier ones run, so
    it suits handlers of a few milliseconds, not slow ones.
    """

    QUICK = 0.002  # seconds

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def record(self, job_name: str, seconds: float) -> None:
        last = self._seconds.get(job_name)
        smoothed = seconds if last is None else 0.8 * last + 0.2 * seconds
        self._seconds[job_name] = smoothed

    def quick(self, job_name: str) -> bool:
        return self._seconds.get(job_name, self.QUICK) < self.QUICK


def batchable(jobs: Jobs, job_name: str) -> bool:
    """Whether a backlog of ``job_name`` may be claimed several rows at a time."""
    return jobs.store.batches and not jobs.stopping and jobs.pace.quick(job_name)


def process_many(jobs: Jobs, job_name: str, execution_ids: Sequence[str]) -> None:
    """Claim several executions of one job in one write, run them in turn, and
    write their plain successes in one more (the direct dispatcher's batches).

    Every claimed row is leased from the claim on, and stays without a start
    time until its outcome is written. Anything but a plain success (a failure,
    a reschedule, a cancel) is written at once, as :func:`process` does.
    ``job:success`` and ``job:end`` of the batched successes follow their
    common write. Rows not started when the runtime begins stopping, or when
    the job stops being quick, go back to ``pending`` with their attempt (and,
    while running, to this pool's queue one by one).
    """
    definition = jobs.definition(job_name)
    if definition is None or definition.kind == "cron" or jobs.stopping:
        for execution_id in execution_ids:
            process(jobs, job_name, execution_id)
        return
    with jobs.in_flight():
        rows = jobs.store.claim_batch(execution_ids, clock.now())
        _run_batch(jobs, definition, rows)
    if len(rows) < len(execution_ids):
        logger.debug("%d of a batch already claimed", len(execution_ids) - len(rows))


def _run_batch(jobs: Jobs, definition: JobDefinition, rows: list[Execution]) -> None:
    interval = beat_interval(definition.crash_threshold(jobs.config.run_timeout))
    for row in rows:
        jobs.lease.hold(row.id, interval)
        # held from the claim on: a cancel() meanwhile aborts it before it starts
        jobs.signals[row.id] = AbortSignal()
    succeeded: list[Run] = []
    left = collections.deque(rows)
    try:
        while left and not jobs.stopping and jobs.pace.quick(definition.name):
            row = left.popleft()
            run = Run(jobs, definition, row, False, jobs.signals.get(row.id))
            if run.execute(defer_success=True):
                succeeded.append(run)
    finally:
        try:
            _write_successes(jobs, succeeded)
        finally:
            _release(jobs, definition.name, list(left))


def _write_successes(jobs: Jobs, runs: list[Run]) -> None:
    if not runs:
        return
    try:
        jobs.store.succeed_batch(
            [(r.id, r.logs, r.definition.retention.records("ok"), r.now) for r in runs],
            clock.now(),
        )
    finally:
        for run in runs:
            run.succeeded()


def _release(jobs: Jobs, job_name: str, rows: list[Execution]) -> None:
    """Give rows a batch claimed but did not start back to ``pending``, with
    their attempt; re-queue them here unless the runtime is stopping."""
    if not rows:
        return
    for row in rows:
        jobs.lease.release(row.id)
        jobs.signals.pop(row.id, None)
    ids = [row.id for row in rows]
    try:
        released = jobs.store.release_unstarted(ids, clock.now())
    except Exception:
        logger.warning(
            "releasing %d unstarted rows of %s failed; the sweep gives them back",
            len(ids),
            job_name,
            exc_info=True,
            extra={"event": "execution.release_failed", "job": job_name},
        )
        return
    logger.debug("%d unstarted rows of %s released", released, job_name)
    if not jobs.stopping and isinstance(jobs.dispatcher, DirectDispatcher):
        jobs.dispatcher.requeue([(job_name, row_id) for row_id in ids])


def _claim_missed(jobs: Jobs, execution_id: str, inline: bool) -> None:
    row = jobs.store.get(execution_id)
    if row is None:
        logger.warning(
            "delivery for execution %s, which no longer exists",
            execution_id,
            extra={"event": "execution.missing", "execution_id": execution_id},
        )
    else:
        logger.debug("execution %s already claimed or not due", execution_id)
    if inline:
        status = row.status if row else "deleted"
        raise InvalidStateError(
            f"inline execution {execution_id} could not start: it is '{status}'"
        )


class Run:
    """One claimed execution, from ``job:begin`` to ``job:end``."""

    def __init__(
        self,
        jobs: Jobs,
        definition: JobDefinition,
        row: Execution,
        inline: bool,
        signal: AbortSignal | None = None,
    ) -> None:
        self.jobs = jobs
        self.definition = definition
        self.row = row
        self.inline = inline
        self.signal = signal or AbortSignal()
        self.now = row.started_at or clock.now()
        self.logs: list[Any] = []
        self._timer: Any = None

    @property
    def id(self) -> str:
        return self.row.id

    def execute(self, defer_success: bool = False) -> bool:
        """Run the handler and write its outcome.

        With ``defer_success``, a plain success is not written: return ``True``
        and leave the write, then :meth:`succeeded`, to the caller.
        """
        jobs, definition = self.jobs, self.definition
        crash_threshold = definition.crash_threshold(jobs.config.run_timeout)
        jobs.lease.hold(self.id, beat_interval(crash_threshold))
        jobs.signals[self.id] = self.signal
        self._timer = self._arm_timeout()
        deferred = False
        try:
            with logcapture.capture(jobs.config.log_max_entries) as buffer:
                self._emit("job:begin", now=self.now)
                error, ctx = self._call_handler()
                self.logs = list(buffer)
            deferred = defer_success and error is None
            deferred = deferred and ctx is not None and ctx.intent is None
            if not deferred:
                self._mark_started()
                self._finish(error, ctx)
        finally:
            if not deferred:
                self._close()
        return deferred

    def succeeded(self) -> None:
        """After the caller wrote a deferred success: log, emit, let go."""
        try:
            self._logged_success()
        finally:
            self._close()

    def _mark_started(self) -> None:
        """A batch-claimed row has no start time yet: record it before the
        outcome (a plain success records it in its own write)."""
        if self.row.started_at is not None:
            return
        try:
            self.jobs.store.mark_started(self.id, self.now)
        except Exception:
            logger.warning("recording the start of %s failed", self.id, exc_info=True)

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.jobs.signals.pop(self.id, None)
        self._emit("job:end")
        self.jobs.lease.release(self.id)

    def _arm_timeout(self) -> Any:
        timeout = self.definition.timeout
        if timeout is None:
            return None
        return self.jobs.timekeeper.call_at(
            self.now + timeout, lambda: self.signal.abort("timeout"), tag="timeout"
        )

    def _call_handler(self) -> tuple[Exception | None, JobContext[Any] | None]:
        ctx: JobContext[Any] | None = None
        began = time.perf_counter()
        try:
            ctx = self._context()
            self.signal.raise_if_aborted()  # cancelled while waiting in a batch
            self.definition.wrapped_handler()(ctx)
        except Exception as error:
            return error, ctx
        finally:
            self.jobs.pace.record(self.definition.name, time.perf_counter() - began)
        return None, ctx

    def _context(self) -> JobContext[Any]:
        schema = self.definition.schema
        payload = self.row.payload
        return JobContext(
            payload=schema.model_validate(payload) if schema else None,
            attempt=self.row.attempt,
            now=self.now,
            signal=self.signal,
            execution_id=self.id,
            job_name=self.definition.name,
            _reschedule=self.jobs.reschedule_intent(
                self.definition, self.inline, payload
            ),
        )

    def _finish(self, error: Exception | None, ctx: JobContext[Any] | None) -> None:
        if error is None and ctx is not None and ctx.intent is not None:
            self._park(ctx)
        elif error is None:
            self._succeed()
        elif self.signal.aborted and self._was_cancelled():
            self._cancelled(error)
        elif self.inline:
            self._fail_inline(error)
        else:
            handle_failure(self.jobs, self.definition, self.row, error, self.logs)

    def _park(self, ctx: JobContext[Any]) -> None:
        intent = ctx.intent
        assert intent is not None
        parked = self.jobs.store.park(
            self.id, clock.now(), intent.scheduled_at, intent.payload
        )
        if parked:
            self.jobs.dispatch_at(self.definition.name, self.id, intent.scheduled_at)
        else:
            logger.debug("reschedule of %s dropped: the row left running", self.id)

    def _succeed(self) -> None:
        keep = self.definition.retention.records("ok")
        self.jobs.store.succeed(self.id, clock.now(), self.logs, keep)
        self._logged_success()

    def _logged_success(self) -> None:
        logger.info(
            "%s %s succeeded",
            self.definition.name,
            self.id,
            extra=self._extra("execution.succeeded"),
        )
        self._emit("job:success")

    def _was_cancelled(self) -> bool:
        current = self.jobs.store.get(self.id)
        return current is not None and current.status == "cancelled"

    def _cancelled(self, error: Exception) -> None:
        self._emit("job:cancel")
        if not self.definition.retention.records("error"):
            self.jobs.store.delete_cancelled(self.id)
        if self.inline:
            raise error

    def _fail_inline(self, error: Exception) -> None:
        keep = self.definition.retention.records("error")
        message = error_message(error)
        self.jobs.store.fail(self.id, clock.now(), message, self.logs, keep)
        self._emit("job:error", error=error)
        raise error

    def _emit(self, event: str, **fields: Any) -> None:
        self.jobs.events.emit(JobEvent(event, self.definition.name, self.id, **fields))

    def _extra(self, event: str) -> dict[str, Any]:
        return {"event": event, "job": self.definition.name, "execution_id": self.id}


def handle_failure(
    jobs: Jobs,
    definition: JobDefinition,
    row: Execution,
    error: BaseException,
    logs: list[Any] | None,
) -> None:
    """Retry later or end the row in ``error`` (SPEC §5.4), then emit ``job:error``."""
    now = clock.now()
    message = error_message(error)
    extra = {"event": "", "job": definition.name, "execution_id": row.id}
    if _can_retry(definition, row.attempt, error):
        next_at = now + _backoff(jobs, definition, row.attempt)
        logger.info(
            "%s %s failed; retry %d/%d in ~%ds: %s",
            definition.name,
            row.id,
            row.attempt + 1,
            definition.max_attempts,
            round((next_at - now).total_seconds()),
            message,
            extra={**extra, "event": "execution.retrying"},
        )
        jobs.store.retry_later(row.id, now, message, next_at, logs)
        jobs.dispatch_at(definition.name, row.id, next_at)
    else:
        logger.info(
            "%s %s dead after %d attempt(s): %s",
            definition.name,
            row.id,
            row.attempt,
            message,
            extra={**extra, "event": "execution.failed"},
        )
        keep = definition.retention.records("error")
        jobs.store.fail(row.id, now, message, logs, keep)
    jobs.events.emit(JobEvent("job:error", definition.name, row.id, error=error))


def _can_retry(definition: JobDefinition, attempt: int, error: BaseException) -> bool:
    retry = definition.retry
    if retry is None or attempt >= retry.max_attempts:
        return False
    if retry.when is None:
        return True
    try:
        return bool(retry.when(error))
    except Exception:
        logger.exception("retry.when of %s raised; not retrying", definition.name)
        return False


def _backoff(jobs: Jobs, definition: JobDefinition, attempt: int) -> Any:
    config = jobs.config
    return backoff_delay(
        attempt,
        definition.retry.backoff if definition.retry else None,
        base=config.retry_backoff_base,
        cap=config.retry_backoff_max,
        random=config.random,
    )


#: The ``error`` the sweep writes when it gives a batch-claimed row of a dead
#: process back to ``pending`` without using an attempt (once per row: a row
#: carrying it that crashes again is recovered as usual, using an attempt).
UNSTARTED_NOTE = (
    "Claimed in a batch by a process that ended before recording the run's start "
    "(recovered by sweep): returned to pending without using an attempt"
)


def crash_message(row: Any, threshold_seconds: float) -> str:
    """The synthetic error the sweep records for a run whose lease expired."""
    started = clock.to_text(row.started_at) if row.started_at else "never"
    renewed = clock.to_text(row.updated_at) if row.updated_at else "never"
    return (
        f"Execution assumed crashed (recovered by sweep): started {started}, "
        f"lease last renewed {renewed}, no renewal within "
        f"{threshold_seconds:g}s"
    )
