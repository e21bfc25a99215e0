"""The delay rule of the dispatcher contract (SPEC §4.2, §12.10 #84-#87).

A transport that cannot hold a delayed message declines it; the runtime then
falls back to a local promoting timer (at most 24 h ahead) and the sweep stays
the backstop. A delivery that arrives early fails the claim guard.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import DelayNotSupported, JobContext, Jobs
from alepha_jobs.definition import Job
from alepha_jobs.dispatch.direct import DirectDispatcher

from .conftest import MakeJobs, RecordingDispatcher, race, wait_until

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
NAME = "delay.work"


class Work(BaseModel):
    n: int


def work_job(jobs: Jobs) -> tuple[Job, list[int]]:
    handled: list[int] = []

    @jobs.job(NAME, schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        handled.append(ctx.payload.n)

    return work, handled


def immediate(recording: RecordingDispatcher) -> list[str]:
    return [
        execution_id for _, execution_id, delay in recording.dispatched if not delay
    ]


@pytest.fixture
def declining() -> RecordingDispatcher:
    return RecordingDispatcher(decline_delays=True)


class DecliningPool(DirectDispatcher):
    """The real in-process pool, behind a transport that declines every delay."""

    def __init__(self) -> None:
        super().__init__(max_concurrency=2)
        self.declined: list[float] = []

    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        if delay_seconds > 0:
            self.declined.append(delay_seconds)
            raise DelayNotSupported("this transport cannot hold delayed messages")
        super().dispatch(job_name, execution_id)


def test_declined_delay_leaves_the_row_for_the_sweep(
    make_jobs: MakeJobs, declining: RecordingDispatcher
) -> None:
    """#84: declined once, nothing runs; once due, a sweep delivers it once."""
    jobs = make_jobs(dispatcher=declining)
    job, handled = work_job(jobs)
    with freeze_time(NOW) as frozen:
        execution_id = job.push({"n": 1}, delay=HOUR)
        declining.deliver_all()
        row = jobs.get_execution(execution_id)
        assert row is not None and row.status == "scheduled"
        assert handled == []

        frozen.tick(HOUR + timedelta(seconds=1))
        jobs.sweep()
        declining.deliver_all()
        jobs.sweep()
        declining.deliver_all()

    assert declining.declined == [(NAME, execution_id, 3600.0)]
    assert handled == [1]
    assert jobs.get_execution(execution_id) is None


def test_declined_delay_arms_a_local_promotion_timer(
    make_jobs: MakeJobs, declining: RecordingDispatcher
) -> None:
    """§4.4: the decline is not an error; a started runtime arms a timer instead."""
    jobs = make_jobs(dispatcher=declining)
    job, _ = work_job(jobs)
    jobs.start()

    execution_id = job.push({"n": 1}, delay=HOUR)

    assert [d[1] for d in declining.declined] == [execution_id]
    assert jobs.timekeeper.armed("promotion") == 1
    assert immediate(declining) == []


@pytest.mark.slow
def test_local_timer_runs_a_declined_delay_on_its_own(make_jobs: MakeJobs) -> None:
    """#85: real time, 2 s delay, no sweep and no pickup: the timer delivers it."""
    pool = DecliningPool()
    jobs = make_jobs(dispatcher=pool, pickup_delay=3600)
    ran: list[datetime] = []
    done = threading.Event()

    @jobs.job(NAME, schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Record when it ran."""
        ran.append(datetime.now(timezone.utc))
        done.set()

    jobs.start()
    pushed_at = datetime.now(timezone.utc)
    execution_id = work.push({"n": 1}, delay=2)
    row = jobs.get_execution(execution_id)
    assert row is not None and row.scheduled_at is not None
    assert done.wait(10)

    assert len(pool.declined) == 1 and 1.9 < pool.declined[0] <= 2
    assert ran[0] >= row.scheduled_at
    assert ran[0] - pushed_at >= timedelta(seconds=1.99)
    assert wait_until(lambda: jobs.get_execution(execution_id) is None)
    assert len(ran) == 1


@pytest.mark.parametrize(
    ("delay", "armed"),
    [(timedelta(hours=23), 1), (timedelta(hours=24), 1), (timedelta(hours=25), 0)],
)
def test_local_timer_is_not_armed_beyond_24_hours(
    make_jobs: MakeJobs,
    declining: RecordingDispatcher,
    delay: timedelta,
    armed: int,
) -> None:
    """§4.2: past the 24 h ceiling the sweep delivers the row instead."""
    jobs = make_jobs(dispatcher=declining)
    job, _ = work_job(jobs)
    jobs.start()
    execution_id = job.push({"n": 1}, delay=delay)

    assert jobs.timekeeper.armed("promotion") == armed
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "scheduled"


def test_early_delivery_fails_the_claim_and_leaves_the_row_scheduled(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#86: a transport that holds the message; an early delivery claims nothing."""
    jobs = make_jobs(dispatcher=recording)
    job, handled = work_job(jobs)
    with freeze_time(NOW) as frozen:
        execution_id = job.push({"n": 1}, delay=timedelta(minutes=10))
        assert recording.dispatched == [(NAME, execution_id, 600.0)]

        jobs.process_execution(NAME, execution_id)
        row = jobs.get_execution(execution_id)
        assert row is not None
        assert (row.status, row.attempt, row.started_at) == ("scheduled", 0, None)
        assert handled == []

        frozen.tick(timedelta(minutes=10))
        jobs.process_execution(NAME, execution_id)

    assert handled == [1]
    assert jobs.get_execution(execution_id) is None


def test_concurrent_promotions_of_one_row_run_it_once(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#87: two ``dispatch_scheduled`` calls race; only one wins the promotion."""
    jobs = make_jobs(dispatcher=recording)
    job, handled = work_job(jobs)

    with freeze_time(NOW) as frozen:
        execution_id = job.push({"n": 1}, delay=60)
        frozen.tick(timedelta(seconds=61))
        failures = race(lambda: jobs.dispatch_scheduled(NAME, execution_id))
        assert immediate(recording) == [execution_id]
        recording.deliver_all()

    assert failures == []
    assert handled == [1]
    assert jobs.get_execution(execution_id) is None
