"""Retries and backoff (SPEC §5.4, §5.5 and §12.5 #47-#55)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import Backoff, JobContext, JobEvent, Jobs, JobsConfig, Retry
from alepha_jobs.definition import Job
from alepha_jobs.retry import backoff_delay

from .conftest import MakeJobs, RecordingDispatcher, wait_until

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DEFAULTS = JobsConfig()


class Work(BaseModel):
    n: int


def failing_job(
    jobs: Jobs, retry: Retry | None, message: str = "nope"
) -> tuple[Job, list[int]]:
    """A job whose handler records each run's ``ctx.attempt`` and then raises."""
    attempts: list[int] = []

    @jobs.job("retry.work", schema=Work, retry=retry)
    def work(ctx: JobContext[Work]) -> None:
        """Fail every time."""
        attempts.append(ctx.attempt)
        raise RuntimeError(message)

    return work, attempts


def errors_seen(jobs: Jobs) -> list[JobEvent]:
    seen: list[JobEvent] = []
    jobs.on("job:error", seen.append)
    return seen


def run_once(recording: RecordingDispatcher, jobs: Jobs, frozen: Any) -> None:
    """Make every retry due, sweep, and deliver what the sweep dispatched."""
    frozen.tick(timedelta(hours=1))
    jobs.sweep()
    recording.deliver_all()


# §5.5: the curve itself


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


@pytest.mark.parametrize(
    ("attempt", "expected_ms"),
    [(1, 1000), (2, 2000), (3, 4000), (4, 5000), (100, 5000)],
)
def test_global_curve_doubles_from_base_up_to_cap(
    attempt: int, expected_ms: int
) -> None:
    """#52: base 1000 ms, max 5000 ms, fraction 1."""
    delay = backoff_delay(
        attempt, None, base=ms(1000), cap=ms(5000), random=lambda: 1.0
    )
    assert delay == ms(expected_ms)


@pytest.mark.parametrize(
    ("attempt", "backoff", "fraction", "expected_ms"),
    [
        (1, Backoff(MINUTE, factor=4, jitter=False), 0.5, 60_000),
        (2, Backoff(MINUTE, factor=4, jitter=False), 0.5, 240_000),
        (3, Backoff(MINUTE, factor=4, jitter=False), 0.5, 960_000),
        (4, Backoff(MINUTE, factor=4, jitter=False), 0.5, 1_800_000),
        (3, Backoff(MINUTE, factor=4, max=10 * MINUTE, jitter=False), 0.5, 600_000),
        (1, Backoff(MINUTE), 0.5, 30_000),
        (1, None, 0.5, 2_500),
    ],
    ids=["x4-1", "x4-2", "x4-3", "x4-4-global-cap", "own-max", "jitter", "default"],
)
def test_per_job_curve_replaces_base_and_factor_under_the_global_cap(
    attempt: int, backoff: Backoff | None, fraction: float, expected_ms: int
) -> None:
    """#54: with the default config (base 5 s, max 30 min)."""
    delay = backoff_delay(
        attempt,
        backoff,
        base=DEFAULTS.retry_backoff_base,
        cap=DEFAULTS.retry_backoff_max,
        random=lambda: fraction,
    )
    assert delay == ms(expected_ms)


def test_default_jitter_source_spreads_delays() -> None:
    """#53: real randomness, base 100 000 ms: 50 draws give > 40 distinct values."""
    draws = {
        backoff_delay(
            1, None, base=ms(100_000), cap=ms(100_000), random=DEFAULTS.random
        )
        for _ in range(50)
    }
    assert len(draws) > 40
    assert all(timedelta(0) <= delay <= ms(100_000) for delay in draws)


def test_exponent_is_clamped_so_huge_attempts_do_not_overflow() -> None:
    """§5.5: ``exponent = min(attempt - 1, 30)``."""
    curve = Backoff(SECOND, factor=10, max=timedelta(days=1), jitter=False)
    delay = backoff_delay(10**6, curve, base=SECOND, cap=SECOND, random=lambda: 1.0)
    assert delay == timedelta(days=1)


# §5.4: failure handling on real rows


def test_first_failure_schedules_a_retry_at_the_jittered_backoff(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#47: retries 2, fraction 0.5: default base 5 s gives a retry 2.5 s out."""
    jobs = make_jobs(dispatcher=recording, random=lambda: 0.5)
    job, attempts = failing_job(jobs, Retry(2))
    with freeze_time(START):
        execution_id = job.push({"n": 1})
        recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt, row.error) == ("scheduled", 1, "nope")
    assert row.scheduled_at == START + timedelta(seconds=2.5)
    assert attempts == [1]


def test_retry_is_dispatched_with_its_delay(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.4 step 3: the retry goes out as a delayed dispatch, never an immediate one."""
    jobs = make_jobs(dispatcher=recording, random=lambda: 0.5)
    job, _ = failing_job(jobs, Retry(2))
    with freeze_time(START):
        execution_id = job.push({"n": 1})
        recording.deliver_all()

    assert recording.dispatched == [("retry.work", execution_id, 2.5)]


def test_direct_mode_failure_leaves_a_scheduled_retry(make_jobs: MakeJobs) -> None:
    """#48: in the real thread pool the row is scheduled within 5 s with the error."""
    jobs = make_jobs(random=lambda: 0.5)
    failed = threading.Event()
    jobs.on("job:error", lambda event: failed.set())
    job, attempts = failing_job(jobs, Retry(2))
    with freeze_time(START):
        jobs.start()
        execution_id = job.push({"n": 1})
        assert failed.wait(10)

        row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt, row.error) == ("scheduled", 1, "nope")
    assert row.scheduled_at is not None
    assert START < row.scheduled_at <= START + 5 * SECOND
    assert attempts == [1]


def test_job_without_retry_ends_in_error_after_one_run(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#49"""
    jobs = make_jobs(dispatcher=recording)
    job, attempts = failing_job(jobs, None, message="dead")
    execution_id = job.push({"n": 1})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.error, row.attempt) == ("error", "dead", 1)
    assert row.completed_at is not None
    assert attempts == [1]


def test_retries_run_until_the_budget_is_spent(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#50: retries 2 means three runs; the third failure is terminal."""
    jobs = make_jobs(dispatcher=recording)
    job, attempts = failing_job(jobs, Retry(2))
    observed: list[tuple[str, int]] = []
    with freeze_time(START) as frozen:
        execution_id = job.push({"n": 1})
        recording.deliver_all()
        for _ in range(3):
            row = jobs.get_execution(execution_id)
            assert row is not None
            observed.append((row.status, row.attempt))
            run_once(recording, jobs, frozen)

    assert observed == [("scheduled", 1), ("scheduled", 2), ("error", 3)]
    assert attempts == [1, 2, 3]


def test_context_attempt_counts_the_runs(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§1.4: ``attempt`` is 1, 2, 3 across retries."""
    jobs = make_jobs(dispatcher=recording)
    job, attempts = failing_job(jobs, Retry(2))
    with freeze_time(START) as frozen:
        job.push({"n": 1})
        recording.deliver_all()
        run_once(recording, jobs, frozen)
        run_once(recording, jobs, frozen)

    assert attempts == [1, 2, 3]


def test_job_error_is_emitted_for_every_failed_attempt(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.4 step 5: retried attempts emit ``job:error`` too, not only the last."""
    jobs = make_jobs(dispatcher=recording)
    seen = errors_seen(jobs)
    job, _ = failing_job(jobs, Retry(2))
    with freeze_time(START) as frozen:
        execution_id = job.push({"n": 1})
        recording.deliver_all()
        assert len(seen) == 1
        run_once(recording, jobs, frozen)
        run_once(recording, jobs, frozen)

    assert [(e.name, e.execution_id) for e in seen] == [
        ("retry.work", execution_id)
    ] * 3
    assert [str(e.error) for e in seen] == ["nope"] * 3


def test_retries_happen_on_their_own_after_the_backoff(make_jobs: MakeJobs) -> None:
    """#51: direct mode, real time, base = max = 120 ms, fraction 1, no sweep."""
    jobs = make_jobs(
        retry_backoff_base=0.12, retry_backoff_max=0.12, random=lambda: 1.0
    )
    calls: list[datetime] = []
    second = threading.Event()

    @jobs.job("retry.soon", schema=Work, retry=Retry(1))
    def soon(ctx: JobContext[Work]) -> None:
        """Fail twice."""
        calls.append(datetime.now(timezone.utc))
        if len(calls) == 2:
            second.set()
        raise RuntimeError("again")

    jobs.start()
    pushed_at = datetime.now(timezone.utc)
    execution_id = soon.push({"n": 1})
    assert second.wait(10)

    assert calls[1] - pushed_at >= timedelta(milliseconds=100)
    assert wait_until(lambda: _status(jobs, execution_id) == "error")
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.attempt, row.error) == (2, "again")
    assert len(calls) == 2


def _status(jobs: Jobs, execution_id: str) -> str | None:
    row = jobs.get_execution(execution_id)
    return None if row is None else row.status


def test_per_job_backoff_sets_the_retry_time(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#55: ``{initial: 7 min, jitter: false}``: the retry is 7 min out."""
    jobs = make_jobs(dispatcher=recording)
    job, _ = failing_job(jobs, Retry(1, backoff=Backoff(7 * MINUTE, jitter=False)))
    with freeze_time(START):
        execution_id = job.push({"n": 1})
        recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "scheduled"
    assert row.scheduled_at == START + 7 * MINUTE


@pytest.mark.parametrize(
    ("raised", "status"),
    [(TimeoutError("slow"), "scheduled"), (ValueError("bad input"), "error")],
)
def test_retry_when_decides_per_failure(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    raised: Exception,
    status: str,
) -> None:
    """§5.4 step 2: ``when(error)`` False ends the row in ``error`` at once."""
    jobs = make_jobs(dispatcher=recording)
    seen_by_when: list[BaseException] = []

    def transient(error: BaseException) -> bool:
        seen_by_when.append(error)
        return isinstance(error, TimeoutError)

    @jobs.job("retry.picky", schema=Work, retry=Retry(3, when=transient))
    def picky(ctx: JobContext[Work]) -> None:
        """Fail with the given error."""
        raise raised

    execution_id = picky.push({"n": 1})
    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt, row.error) == (status, 1, str(raised))
    assert seen_by_when == [raised]


def test_retry_when_false_still_emits_job_error(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)
    seen = errors_seen(jobs)
    job, _ = failing_job(jobs, Retry(3, when=lambda error: False))
    execution_id = job.push({"n": 1})
    recording.deliver_all()

    assert [e.execution_id for e in seen] == [execution_id]
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "error"


def test_retry_keeps_the_redispatch_count_and_attempt(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.4: a scheduled retry does not reset ``attempt`` or ``redispatch_count``."""
    jobs = make_jobs(dispatcher=recording, stale_threshold=0)
    job, _ = failing_job(jobs, Retry(2))
    with freeze_time(START):
        execution_id = job.push({"n": 1})
        jobs.sweep()  # counts one lost delivery
        recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt, row.redispatch_count) == ("scheduled", 1, 1)
