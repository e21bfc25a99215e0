"""Cron mode: SPEC §6.3, §6.4, §12.2 (#13-#22), #46 for cron, §12.5 #56, and
DESIGN §6 and §8.4 (time zones, ``catch_up=True``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import (
    DispatchError,
    Execution,
    Job,
    JobContext,
    Jobs,
    JobUsageError,
    RegistrationError,
    Retention,
    Retry,
    Rule,
)
from alepha_jobs.cron.catch_up import last_key

from .conftest import MakeJobs, RecordingDispatcher, wait_until

NAME = "reports.hourly"
HOURLY = "0 * * * *"
EVERY_SECOND = "* * * * * *"
START = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)
INSTANT = datetime(2026, 1, 1, 13, 0, tzinfo=timezone.utc)
log = logging.getLogger("tests.cron")


class Payload(BaseModel):
    n: int = 0


def cron_job(
    jobs: Jobs,
    handler: Callable[[JobContext[None]], None],
    name: str = NAME,
    **options: Any,
) -> Job:
    options.setdefault("cron", HOURLY)
    return jobs.job(name, description="A test cron.", **options)(handler)


def rows(jobs: Jobs, name: str = NAME) -> list[Execution]:
    """Every row of ``name``, newest first, with payload and logs loaded."""
    listed = jobs.executions(name, size=100).content
    return [row for row in map(jobs.get_execution, (r.id for r in listed)) if row]


def messages(row: Execution) -> list[str]:
    return [entry["message"] for entry in row.logs or []]


@pytest.fixture
def jobs(make_jobs: MakeJobs) -> Jobs:
    return make_jobs()


# §12.2: trigger() of an inline cron run


def test_trigger_runs_the_handler_once_before_returning_and_keeps_an_ok_row(
    jobs: Jobs,
) -> None:
    """#13: synchronous; the default cron retention keeps the ``ok`` row."""
    calls: list[int] = []
    job = cron_job(jobs, lambda ctx: calls.append(ctx.attempt))

    job.trigger()

    assert calls == [1]
    assert [row.status for row in rows(jobs)] == ["ok"]


@pytest.mark.parametrize(
    ("retention", "fails", "expected"),
    [
        (Retention(ok=False), False, []),  # #14
        (Retention(ok=Rule(last=3)), False, ["ok"]),  # #16
        (Retention(error=False), True, []),  # #21
    ],
    ids=["ok-false", "ok-last-3", "error-false"],
)
def test_retention_decides_whether_the_cron_run_leaves_a_row(
    jobs: Jobs, retention: Retention, fails: bool, expected: list[str]
) -> None:
    """#14, #16, #21."""
    calls: list[int] = []

    def handler(ctx: JobContext[None]) -> None:
        calls.append(1)
        if fails:
            raise RuntimeError("boom")

    job = cron_job(jobs, handler, retention=retention)
    job.trigger()

    assert calls == [1]
    assert [row.status for row in rows(jobs)] == expected


def test_a_failing_cron_run_records_its_error_and_trigger_does_not_raise(
    jobs: Jobs,
) -> None:
    """#15."""

    def handler(ctx: JobContext[None]) -> None:
        raise RuntimeError("boom")

    job = cron_job(jobs, handler)
    job.trigger()

    [row] = rows(jobs)
    assert (row.status, row.error) == ("error", "boom")


@pytest.mark.parametrize("fails", [True, False], ids=["error-row", "ok-row"])
def test_the_cron_row_keeps_the_log_lines_of_its_run(jobs: Jobs, fails: bool) -> None:
    """#17 (failure) and #18 (success: R5 keeps logs on ``ok`` rows too)."""

    def handler(ctx: JobContext[None]) -> None:
        log.warning("before the end")
        if fails:
            raise RuntimeError("boom")

    job = cron_job(jobs, handler)
    job.trigger()

    [row] = rows(jobs)
    assert row.status == ("error" if fails else "ok")
    assert "before the end" in messages(row)


def test_logs_of_one_cron_run_never_leak_into_the_next(jobs: Jobs) -> None:
    """#19: each of two failing runs stores only its own lines."""
    runs: list[int] = []

    def handler(ctx: JobContext[None]) -> None:
        runs.append(1)
        log.warning("run %d", len(runs))
        raise RuntimeError("boom")

    job = cron_job(jobs, handler)
    job.trigger()
    job.trigger()

    logged = sorted(messages(row) for row in rows(jobs))
    assert logged == [["run 1"], ["run 2"]]


def test_every_trigger_writes_its_own_row_with_its_own_attribution(
    jobs: Jobs,
) -> None:
    """#20: three triggers of an hourly cron, the first by ``admin-1``."""
    job = cron_job(jobs, lambda ctx: None)

    job.trigger(triggered_by="admin-1", triggered_by_name="Admin One")
    job.trigger()
    job.trigger()

    found = rows(jobs)
    assert [row.status for row in found] == ["ok"] * 3
    assert len({row.id for row in found}) == 3
    assert [row.triggered_by for row in found].count("admin-1") == 1


@pytest.mark.parametrize("retry", [None, Retry(1)], ids=["inline", "with-retry"])
def test_reschedule_in_a_cron_run_raises_and_the_handler_can_catch_it(
    make_jobs: MakeJobs, recording: RecordingDispatcher, retry: Retry | None
) -> None:
    """#22, and DESIGN §8.6: refused for every cron job, retry or not."""
    jobs = make_jobs(dispatcher=recording)
    caught: list[Exception] = []

    def handler(ctx: JobContext[None]) -> None:
        try:
            ctx.reschedule(delay=60)
        except JobUsageError as error:
            caught.append(error)

    job = cron_job(jobs, handler, retry=retry)
    job.trigger()
    recording.deliver_all()

    assert len(caught) == 1
    assert "cron" in str(caught[0])
    assert [row.status for row in rows(jobs)] == ["ok"]


def test_a_trigger_after_stop_runs_nothing_and_says_so(
    jobs: Jobs, caplog: pytest.LogCaptureFixture
) -> None:
    """§5.8: once stopping, cron runs return at once; a manual trigger is logged."""
    calls: list[int] = []
    job = cron_job(jobs, lambda ctx: calls.append(1))
    jobs.start()
    jobs.stop()

    with caplog.at_level(logging.WARNING, logger="alepha_jobs"):
        job.trigger()

    assert calls == []
    assert rows(jobs) == []
    assert any(
        "stopped" in r.getMessage() and NAME in r.getMessage() for r in caplog.records
    )


# #46: middleware wraps cron runs


@pytest.mark.parametrize("retry", [None, Retry(1)], ids=["inline", "with-retry"])
def test_middleware_wraps_cron_runs_in_onion_order(
    make_jobs: MakeJobs, recording: RecordingDispatcher, retry: Retry | None
) -> None:
    """#46: middlewares apply to cron runs, the first declared outermost."""
    jobs = make_jobs(dispatcher=recording)
    trace: list[str] = []

    def middleware(label: str) -> Callable[[JobContext[Any], Callable[[], Any]], Any]:
        def wrap(ctx: JobContext[Any], call_next: Callable[[], Any]) -> Any:
            trace.append(f"{label}:before")
            result = call_next()
            trace.append(f"{label}:after")
            return result

        return wrap

    use = [middleware("first"), middleware("second")]
    job = cron_job(jobs, lambda ctx: trace.append("handler"), retry=retry, use=use)
    job.trigger()
    recording.deliver_all()

    assert trace == [
        "first:before",
        "second:before",
        "handler",
        "second:after",
        "first:after",
    ]


# §6.1 and §6.3: a scheduled tick


def test_a_scheduled_tick_is_attributed_to_the_system(jobs: Jobs) -> None:
    """§6.3 step 9: ``system`` / ``system (cron)``; a trigger leaves them empty."""
    job = cron_job(jobs, lambda ctx: None)

    jobs.cron.scheduled(NAME, INSTANT)
    job.trigger()

    attribution = sorted(
        (row.triggered_by or "", row.triggered_by_name or "") for row in rows(jobs)
    )
    assert attribution == [("", ""), ("system", "system (cron)")]


def test_a_tick_through_the_runner_records_the_attribution_it_is_given(
    jobs: Jobs,
) -> None:
    seen: list[datetime] = []
    cron_job(jobs, lambda ctx: seen.append(ctx.now))
    definition = jobs.definition(NAME)
    assert definition is not None

    assert jobs.cron.tick(definition, INSTANT, "system", "system (cron)")

    [row] = rows(jobs)
    assert (row.triggered_by, row.triggered_by_name) == ("system", "system (cron)")
    assert seen == [INSTANT]


@pytest.mark.parametrize("retry", [None, Retry(1)], ids=["inline", "with-retry"])
def test_ctx_now_of_a_tick_is_the_scheduled_instant_not_the_wall_clock(
    make_jobs: MakeJobs, recording: RecordingDispatcher, retry: Retry | None
) -> None:
    """§6.1 and DESIGN §3: ``now`` is the instant, the same in every process.

    With ``retry`` the run goes through the outbox and ``now`` is its claim
    time (SPEC §1.4), so only the inline case is checked for the instant.
    """
    jobs = make_jobs(dispatcher=recording)
    seen: list[datetime] = []
    cron_job(jobs, lambda ctx: seen.append(ctx.now), retry=retry)

    with freeze_time(INSTANT + timedelta(seconds=7, milliseconds=250)):
        jobs.cron.scheduled(NAME, INSTANT)
        recording.deliver_all()

    expected = INSTANT if retry is None else INSTANT + timedelta(seconds=7.25)
    assert seen == [expected]


def test_a_manual_trigger_sees_the_wall_clock_as_now(jobs: Jobs) -> None:
    """§6.3 step 4: a trigger has no instant; ``now`` is the run's start."""
    seen: list[datetime] = []
    job = cron_job(jobs, lambda ctx: seen.append(ctx.now))

    with freeze_time(START):
        job.trigger()

    assert seen == [START]


# §12.5 #56: cron with retry, through the outbox


def test_cron_with_retry_runs_through_the_outbox_until_the_budget_is_spent(
    make_jobs: MakeJobs,
) -> None:
    """#56: direct mode, ``retries=1``, always failing."""
    jobs = make_jobs(random=lambda: 0.5)
    attempts: list[int] = []
    failed = threading.Semaphore(0)
    jobs.on("job:error", lambda event: failed.release())

    def handler(ctx: JobContext[None]) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("nope")

    job = cron_job(jobs, handler, retry=Retry(1))
    with freeze_time(START) as frozen:
        jobs.start()
        job.trigger()
        assert failed.acquire(timeout=10)
        [row] = rows(jobs)
        assert (row.status, row.attempt, row.max_attempts) == ("scheduled", 1, 2)

        frozen.tick(timedelta(hours=1))
        jobs.sweep()
        assert failed.acquire(timeout=10)
        assert wait_until(lambda: rows(jobs)[0].status == "error")

    [row] = rows(jobs)
    assert (row.attempt, row.error) == (2, "nope")
    assert attempts == [1, 2]


def test_cron_with_retry_writes_a_pending_row_and_dispatches_it(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§6.4: the tick only writes the row; the handler runs on delivery."""
    jobs = make_jobs(dispatcher=recording)
    calls: list[int] = []
    cron_job(jobs, lambda ctx: calls.append(ctx.attempt), retry=Retry(2))

    jobs.cron.scheduled(NAME, INSTANT)

    [row] = rows(jobs)
    assert (row.status, row.max_attempts, row.payload) == ("pending", 3, None)
    assert (row.triggered_by, row.triggered_by_name) == ("system", "system (cron)")
    assert recording.dispatched == [(NAME, row.id, 0)]
    assert calls == []


class RefusingDispatcher(RecordingDispatcher):
    """A transport that is down: every dispatch raises."""

    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        raise DispatchError("broker unreachable")


def test_a_dispatch_error_of_cron_with_retry_reaches_a_trigger_caller(
    make_jobs: MakeJobs,
) -> None:
    """§6.4: the row stays for the sweep, the run lock is released, and the
    error propagates to a manual trigger."""
    jobs = make_jobs(dispatcher=RefusingDispatcher())
    job = cron_job(jobs, lambda ctx: None, retry=Retry(1))

    for _ in range(2):  # the second gets past the run lock: it was released
        with pytest.raises(DispatchError, match="broker unreachable"):
            job.trigger()

    assert [row.status for row in rows(jobs)] == ["pending", "pending"]


def test_a_dispatch_error_of_a_scheduled_tick_is_logged_not_raised(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """§6.4: the scheduled tick logs "Cron tick failed"."""
    jobs = make_jobs(dispatcher=RefusingDispatcher())
    cron_job(jobs, lambda ctx: None, retry=Retry(1))

    jobs.cron.scheduled(NAME, INSTANT)

    assert [row.status for row in rows(jobs)] == ["pending"]
    assert any("Cron tick failed" in r.getMessage() for r in caplog.records)


# registration


def handler(ctx: JobContext[Any]) -> None:
    """Do the work."""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"cron": "61 * * * *"}, "Invalid cron expression '61 * * * *'"),
        ({"cron": "not a cron"}, "for job 'reports.hourly'"),
        (
            {"cron": HOURLY, "timezone": "Mars/Olympus_Mons"},
            "Job 'reports.hourly': Unknown time zone 'Mars/Olympus_Mons'",
        ),
        ({"cron": HOURLY, "schema": Payload}, "split"),
        ({"cron": HOURLY, "inline": True}, "no caller to block"),
    ],
    ids=["bad-field", "garbage", "unknown-zone", "with-schema", "with-inline"],
)
def test_a_malformed_cron_job_is_refused_at_registration(
    jobs: Jobs, options: dict[str, Any], expected: str
) -> None:
    """SPEC §1.2 rules 5, 7 and 11; DESIGN §6 (IANA zones)."""
    with pytest.raises(RegistrationError) as caught:
        jobs.job(NAME, **options)(handler)

    assert expected in str(caught.value)
    assert NAME not in jobs.registry


# DESIGN §8.4: catch_up=True


def catch_up_runtime(make_jobs: MakeJobs, seen: list[datetime]) -> Jobs:
    """A fresh runtime (a new process) on the test's database."""
    jobs = make_jobs()
    cron_job(jobs, lambda ctx: seen.append(ctx.now), catch_up=True)
    return jobs


def test_catch_up_on_first_start_records_a_baseline_without_running(
    make_jobs: MakeJobs,
) -> None:
    """Nothing was missed before the job existed."""
    seen: list[datetime] = []
    with freeze_time(START):
        jobs = catch_up_runtime(make_jobs, seen)
        jobs.start()
        jobs.stop()

    assert seen == []
    assert rows(jobs) == []
    assert jobs.locks.get(last_key(NAME)) == "2026-01-01T12:00:00.000Z"


def test_catch_up_by_two_processes_after_a_missed_instant_runs_once(
    make_jobs: MakeJobs,
) -> None:
    """The catch-up tick goes through the instant claim."""
    seen: list[datetime] = []
    with freeze_time(START) as frozen:
        catch_up_runtime(make_jobs, seen).start().stop()
        frozen.move_to(START + timedelta(hours=1))

        replicas = [catch_up_runtime(make_jobs, seen) for _ in range(2)]
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.stop()

    assert seen == [INSTANT]


def test_catch_up_runs_a_missed_instant_exactly_once_at_the_next_start(
    make_jobs: MakeJobs,
) -> None:
    seen: list[datetime] = []
    with freeze_time(START) as frozen:
        catch_up_runtime(make_jobs, seen).start().stop()
        frozen.move_to(START + timedelta(hours=2))  # 13:00 and 14:00 missed

        second = catch_up_runtime(make_jobs, seen)
        second.start()
        second.stop()
        catch_up_runtime(make_jobs, seen).start().stop()  # nothing new missed

    latest = datetime(2026, 1, 1, 14, 0, tzinfo=timezone.utc)
    assert seen == [latest]  # one coalesced run, for the latest instant
    [row] = rows(second)
    assert (row.status, row.triggered_by) == ("ok", "system")
    assert second.locks.get(last_key(NAME)) == "2026-01-01T14:00:00.000Z"


def test_without_catch_up_a_missed_instant_is_not_replayed(
    make_jobs: MakeJobs,
) -> None:
    """SPEC §6.6: no catch-up by default."""
    seen: list[datetime] = []
    with freeze_time(START) as frozen:
        first = make_jobs()
        cron_job(first, lambda ctx: seen.append(ctx.now))
        first.start().stop()
        frozen.move_to(START + timedelta(hours=2))
        later = make_jobs()
        cron_job(later, lambda ctx: seen.append(ctx.now))
        later.start().stop()

    assert seen == []


# real ticks through APScheduler (real time, about a second each)


def test_a_started_runtime_ticks_every_second_with_distinct_whole_instants(
    jobs: Jobs,
) -> None:
    """§6.1: APScheduler fires each instant and passes it as ``ctx.now``."""
    seen: list[datetime] = []
    twice = threading.Event()

    def handler(ctx: JobContext[None]) -> None:
        seen.append(ctx.now)
        if len(seen) >= 2:
            twice.set()

    cron_job(jobs, handler, cron=EVERY_SECOND)
    started = datetime.now(timezone.utc)
    jobs.start()
    assert twice.wait(5)
    jobs.stop()

    first, second = seen[:2]
    assert first < second
    assert all(moment.microsecond == 0 for moment in (first, second))
    assert first >= started - timedelta(seconds=1)
    statuses = {row.status for row in rows(jobs)}
    assert statuses == {"ok"}
    assert {row.triggered_by for row in rows(jobs)} == {"system"}


def test_a_cron_job_registered_after_start_is_scheduled(jobs: Jobs) -> None:
    """§6.1: a cron registered after start starts at once."""
    ran = threading.Event()
    jobs.start()

    cron_job(jobs, lambda ctx: ran.set(), cron=EVERY_SECOND)

    assert ran.wait(5)


def open_files(path: str) -> int:
    """How many file descriptors of this process point at ``path`` (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while listing
        count += target == path
    return count


@pytest.mark.sqlite_only
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_ticks_do_not_accumulate_open_database_connections(
    jobs: Jobs, db_url: str
) -> None:
    """DESIGN §4: one connection per thread, and a long-running process must not
    grow without bound; a per-second cron ticks 86,400 times a day."""
    path = os.path.realpath(db_url.removeprefix("sqlite:///"))
    ticks = threading.Semaphore(0)
    cron_job(jobs, lambda ctx: ticks.release(), cron=EVERY_SECOND)
    jobs.start()
    assert ticks.acquire(timeout=5)
    after_first = open_files(path)

    for _ in range(5):
        assert ticks.acquire(timeout=5)

    # A leak adds one file per tick; at most the tick thread still finishing
    # may hold one more than before.
    assert open_files(path) <= after_first + 1
