"""Running one outbox execution: SPEC §4.5 (events, timeout, lease), §4.7 (log
capture), §7 (timeout signal), §8 (events) and DESIGN §8.5, §8.9."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import JobContext, JobEvent, Jobs, Retention, Retry, Rule
from alepha_jobs.definition import Job

from . import outbox
from .conftest import MakeJobs, RecordingDispatcher, wait_until

START = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
EVENTS = ("job:begin", "job:success", "job:error", "job:cancel", "job:end")
KEEP_ALL = Retention(ok=Rule(last=10), error=Rule(last=10))
HANDLER_LOGGER = "tests.execution.handler"

log = logging.getLogger(HANDLER_LOGGER)


class Work(BaseModel):
    n: int


class Signup(BaseModel):
    user_id: int


def record_events(jobs: Jobs) -> list[JobEvent]:
    seen: list[JobEvent] = []
    for name in EVENTS:
        jobs.on(name, seen.append)
    return seen


def names(events: list[JobEvent]) -> list[str]:
    return [event.event for event in events]


def work_job(
    jobs: Jobs, *, fail: bool = False, retry: Retry | None = None, **options: Any
) -> Job:
    @jobs.job("exec.work", schema=Work, retry=retry, **options)
    def work(ctx: JobContext[Work]) -> None:
        """Succeed or fail on demand."""
        if fail:
            raise RuntimeError("work failed")

    return work


@pytest.fixture
def debug_handler_logs() -> Iterator[logging.Logger]:
    """Let the handler logger create DEBUG records; restore its level after."""
    previous = log.level
    log.setLevel(logging.DEBUG)
    yield log
    log.setLevel(previous)


def messages(logs: list[dict[str, Any]] | None) -> list[str]:
    return [e["message"] for e in logs or [] if e["logger"] == HANDLER_LOGGER]


# §4.5, §8: the order of events


def test_a_success_emits_begin_with_the_claim_time_then_success_then_end(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§4.5 step 7, §8: ``job:begin`` carries ``now``, the claim time."""
    jobs = make_jobs(dispatcher=recording)
    work = work_job(jobs, retention=Retention(ok=Rule(last=5)))
    seen = record_events(jobs)

    with freeze_time(START):
        execution_id = work.push({"n": 1})
        recording.deliver_all()

    assert names(seen) == ["job:begin", "job:success", "job:end"]
    assert seen[0].now == START
    row = jobs.get_execution(execution_id)
    assert row is not None and row.started_at == START
    assert all(event.execution_id == execution_id for event in seen)


def test_a_failure_emits_begin_then_error_then_end(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§4.5, §5.4, §8: ``job:error`` carries the handler's exception."""
    jobs = make_jobs(dispatcher=recording)
    work = work_job(jobs, fail=True)
    seen = record_events(jobs)

    work.push({"n": 1})
    recording.deliver_all()

    assert names(seen) == ["job:begin", "job:error", "job:end"]
    assert str(seen[1].error) == "work failed"


def test_a_raising_begin_listener_is_logged_and_the_run_still_succeeds(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DESIGN §8.5 (SPEC §8 caveat): the handler runs, the row is deleted,
    ``job:success`` and ``job:end`` follow."""
    jobs = make_jobs(dispatcher=recording)
    ran: list[int] = []

    @jobs.job("exec.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Record the run."""
        ran.append(ctx.payload.n)

    def broken(event: JobEvent) -> None:
        raise RuntimeError("listener broke")

    jobs.on("job:begin", broken)
    seen = record_events(jobs)

    with caplog.at_level(logging.ERROR, logger="alepha_jobs"):
        execution_id = work.push({"n": 7})
        recording.deliver_all()

    assert ran == [7]
    assert jobs.get_execution(execution_id) is None
    assert names(seen) == ["job:begin", "job:success", "job:end"]
    assert any(
        r.exc_info and str(r.exc_info[1]) == "listener broke" for r in caplog.records
    )


@pytest.mark.parametrize(
    ("event", "fail", "outcome"),
    [
        ("job:success", False, "ok"),
        ("job:end", False, "ok"),
        ("job:error", True, "error"),
        ("job:end", True, "error"),
    ],
)
def test_a_raising_listener_of_a_later_event_leaves_the_outcome_alone(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    event: str,
    fail: bool,
    outcome: str,
) -> None:
    """§8: errors of success/error/end listeners are caught and logged."""
    jobs = make_jobs(dispatcher=recording)
    work = work_job(jobs, fail=fail, retention=KEEP_ALL)

    def broken(_: JobEvent) -> None:
        raise RuntimeError("listener broke")

    jobs.on(event, broken)
    seen = record_events(jobs)

    execution_id = work.push({"n": 1})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == outcome
    assert names(seen)[-1] == "job:end"


# §7: the timeout signal


def timeout_job(
    jobs: Jobs, raise_after: bool, retry: Retry | None = None
) -> tuple[Job, list[str | None]]:
    reasons: list[str | None] = []

    @jobs.job("exec.slow", schema=Work, timeout=0.2, retry=retry, retention=KEEP_ALL)
    def slow(ctx: JobContext[Work]) -> None:
        """Wait for the timeout signal instead of working."""
        ctx.signal.wait(5)
        reasons.append(ctx.signal.reason)
        if raise_after:
            ctx.signal.raise_if_aborted()

    return slow, reasons


def test_a_handler_that_ignores_the_timeout_and_returns_succeeds(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§7: the signal fires with reason ``timeout``; returning normally is a
    success."""
    jobs = make_jobs(dispatcher=recording)
    slow, reasons = timeout_job(jobs, raise_after=False)
    seen = record_events(jobs)

    execution_id = slow.push({"n": 1})
    recording.deliver_all()

    assert reasons == ["timeout"]
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "ok"
    assert names(seen) == ["job:begin", "job:success", "job:end"]


@pytest.mark.parametrize(
    ("retry", "status"), [(None, "error"), (Retry(2), "scheduled")]
)
def test_a_handler_that_raises_after_the_timeout_fails_under_the_retry_policy(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    retry: Retry | None,
    status: str,
) -> None:
    """§4.5, §7: a timeout that makes the handler raise is an ordinary failure."""
    jobs = make_jobs(dispatcher=recording)
    slow, reasons = timeout_job(jobs, raise_after=True, retry=retry)
    seen = record_events(jobs)

    execution_id = slow.push({"n": 1})
    recording.deliver_all()

    assert reasons == ["timeout"]
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == status
    assert row.error is not None and "timeout" in row.error
    assert names(seen) == ["job:begin", "job:error", "job:end"]


# §1.4: what the handler receives


def test_the_context_carries_attempt_id_name_claim_time_and_a_schema_instance(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§1.4: attempt counts claims (2 on the first retry); ``now`` is the claim
    time; ``payload`` is an instance of the schema."""
    jobs = make_jobs(dispatcher=recording, retry_backoff_base=1)
    contexts: list[JobContext[Work]] = []

    @jobs.job("exec.flaky", schema=Work, retry=Retry(1))
    def flaky(ctx: JobContext[Work]) -> None:
        """Fail the first attempt."""
        contexts.append(ctx)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    with freeze_time(START) as frozen:
        execution_id = flaky.push({"n": 3})
        recording.deliver_all()
        frozen.tick(60)
        jobs.sweep()
        recording.deliver_all()

    assert [ctx.attempt for ctx in contexts] == [1, 2]
    assert [ctx.now for ctx in contexts] == [START, START.replace(minute=31)]
    for ctx in contexts:
        assert ctx.execution_id == execution_id
        assert ctx.job_name == "exec.flaky"
        assert isinstance(ctx.payload, Work) and ctx.payload.n == 3


# §4.7: log capture


def test_a_kept_ok_row_stores_the_lines_the_handler_logged(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    debug_handler_logs: logging.Logger,
) -> None:
    """§4.7, D13: ``ok`` rows keep their logs, DEBUG lines included."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("exec.logs", schema=Work, retention=Retention(ok=Rule(last=5)))
    def chatty(ctx: JobContext[Work]) -> None:
        """Log a little."""
        log.debug("loading %d", ctx.payload.n)
        log.info("done")

    execution_id = chatty.push({"n": 4})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "ok"
    assert messages(row.logs) == ["loading 4", "done"]


@pytest.mark.parametrize(
    ("retry", "status"), [(None, "error"), (Retry(1), "scheduled")]
)
def test_a_failed_run_stores_the_lines_logged_before_the_failure(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    debug_handler_logs: logging.Logger,
    retry: Retry | None,
    status: str,
) -> None:
    """§4.7: terminal ``error`` rows and retry (``scheduled``) rows keep logs."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("exec.logs", schema=Work, retry=retry)
    def doomed(ctx: JobContext[Work]) -> None:
        """Log, then fail."""
        log.debug("calling the provider")
        log.warning("provider answered 503")
        raise RuntimeError("provider down")

    execution_id = doomed.push({"n": 1})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == status
    assert messages(row.logs) == ["calling the provider", "provider answered 503"]


def test_two_concurrent_runs_never_share_log_lines(
    make_jobs: MakeJobs, debug_handler_logs: logging.Logger
) -> None:
    """§4.7: one run's logs never leak into another, even running side by side."""
    jobs = make_jobs(direct_max_concurrency=2)
    both_running = threading.Barrier(2, timeout=5)

    @jobs.job("exec.logs", schema=Work, retention=Retention(ok=Rule(last=5)))
    def chatty(ctx: JobContext[Work]) -> None:
        """Log around a rendezvous with the other run."""
        log.info("run %d starts", ctx.payload.n)
        both_running.wait()
        log.info("run %d ends", ctx.payload.n)

    jobs.start()
    first, second = chatty.push({"n": 1}), chatty.push({"n": 2})
    assert jobs.drain(5)

    for execution_id, n in ((first, 1), (second, 2)):
        row = jobs.get_execution(execution_id)
        assert row is not None and row.status == "ok"
        assert messages(row.logs) == [f"run {n} starts", f"run {n} ends"]


def test_lines_the_caller_logs_around_an_inline_push_are_not_captured(
    make_jobs: MakeJobs, debug_handler_logs: logging.Logger
) -> None:
    """§4.7: nothing leaks from or into the context that called ``push``."""
    jobs = make_jobs()

    @jobs.job("exec.logs", schema=Work, retention=Retention(ok=Rule(last=5)))
    def chatty(ctx: JobContext[Work]) -> None:
        """Log one line."""
        log.info("inside the run")

    log.info("caller before push")
    execution_id = chatty.push({"n": 1}, inline=True)
    log.info("caller after push")
    again = chatty.push({"n": 2}, inline=True)

    for row_id in (execution_id, again):
        row = jobs.get_execution(row_id)
        assert row is not None
        assert messages(row.logs) == ["inside the run"]


def test_log_capture_keeps_at_most_log_max_entries(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    debug_handler_logs: logging.Logger,
) -> None:
    """§4.7, §9.1 ``logMaxEntries``: the bound is what matters."""
    jobs = make_jobs(dispatcher=recording, log_max_entries=3)

    @jobs.job("exec.logs", schema=Work, retention=Retention(ok=Rule(last=5)))
    def chatty(ctx: JobContext[Work]) -> None:
        """Log ten lines."""
        for line in range(10):
            log.info("line %d", line)

    execution_id = chatty.push({"n": 1})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None and row.logs is not None
    assert len(row.logs) == 3
    assert set(messages(row.logs)) <= {f"line {n}" for n in range(10)}


def test_a_log_entry_has_level_message_logger_and_timestamp_ms(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    debug_handler_logs: logging.Logger,
) -> None:
    """§4.7: the Python entry shape ``{level, message, logger, timestamp_ms}``."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("exec.logs", schema=Work, retention=Retention(ok=Rule(last=5)))
    def chatty(ctx: JobContext[Work]) -> None:
        """Log one warning."""
        log.warning("quota at %d%%", 90)

    before = int(time.time() * 1000)
    execution_id = chatty.push({"n": 1})
    recording.deliver_all()
    after = int(time.time() * 1000)

    row = jobs.get_execution(execution_id)
    assert row is not None and row.logs is not None
    [entry] = [e for e in row.logs if e["logger"] == HANDLER_LOGGER]
    assert entry["level"] == "warning"
    assert entry["message"] == "quota at 90%"
    assert before <= entry["timestamp_ms"] <= after


# §4.5: a stored payload that no longer validates


@pytest.mark.parametrize(
    ("retry", "status"), [(None, "error"), (Retry(1), "scheduled")]
)
def test_a_stored_payload_that_no_longer_validates_fails_normally(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    retry: Retry | None,
    status: str,
) -> None:
    """§4.5, §5.4: the handler is not called; the failure path records an error
    naming the field, emits ``job:error`` and ``job:end``."""
    jobs = make_jobs(dispatcher=recording)
    called: list[int] = []

    @jobs.job("exec.signup", schema=Signup, retry=retry)
    def welcome(ctx: JobContext[Signup]) -> None:
        """Welcome a user."""
        called.append(ctx.payload.user_id)

    seen = record_events(jobs)
    execution_id = welcome.push({"user_id": 1})
    with outbox.connect(jobs) as raw:
        raw.execute(
            "UPDATE job_executions SET payload = ? WHERE id = ?",
            ('{"user_id": "not a number"}', execution_id),
        )
    recording.deliver_all()

    assert called == []
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == status
    assert row.error is not None and "user_id" in row.error
    assert names(seen) == ["job:begin", "job:error", "job:end"]


# §4.5 step 6: the lease heartbeat


def test_the_lease_heartbeat_renews_a_long_run_and_stops_when_it_ends(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§4.5 step 6, T10: ``timeout=0.9`` gives a 1.8 s lease, renewed every 0.6 s;
    once the run ended its row is no longer held or renewed."""
    jobs = make_jobs(dispatcher=recording)
    claimed = threading.Event()
    release = threading.Event()

    @jobs.job("exec.long", schema=Work, timeout=0.9, retention=KEEP_ALL)
    def long_run(ctx: JobContext[Work]) -> None:
        """Run until the test releases it (ignoring the timeout signal)."""
        claimed.set()
        release.wait(5)

    execution_id = long_run.push({"n": 1})
    runner = threading.Thread(target=recording.deliver_all)
    runner.start()
    assert claimed.wait(5)

    def row_updated_at() -> datetime:
        row = jobs.get_execution(execution_id)
        assert row is not None
        return row.updated_at

    first = row_updated_at()
    assert wait_until(lambda: row_updated_at() > first, timeout=3)
    second = row_updated_at()
    assert wait_until(lambda: row_updated_at() > second, timeout=3)
    release.set()
    runner.join(5)

    ended = jobs.get_execution(execution_id)
    assert ended is not None and ended.status == "ok"
    assert not jobs.lease.holds(execution_id)
    jobs.lease.beat()
    assert row_updated_at() == ended.updated_at
