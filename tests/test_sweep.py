"""The reconciliation sweep and the lease heartbeat (SPEC §5.1-§5.3, §12.9 #74-#83).

Rows are delivered only when a test calls ``recording.deliver_all()``; time is
frozen so every phase's cut-off is exact.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import JobContext, JobEvent, Jobs, Retention, Retry, StoreError
from alepha_jobs.clock import to_text
from alepha_jobs.definition import Job
from alepha_jobs.lease import Lease, beat_interval
from alepha_jobs.store.base import Store
from alepha_jobs.sweep import SweepReport

from . import outbox
from .conftest import MakeJobs, RecordingDispatcher, wait_until

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
NAME = "sweep.work"
TERMINAL = ("ok", "error", "cancelled")


class Work(BaseModel):
    n: int


def work_job(jobs: Jobs, retry: Retry | None = None) -> tuple[Job, list[int]]:
    """A job that records the payloads it handled."""
    handled: list[int] = []

    @jobs.job(NAME, schema=Work, retry=retry)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        handled.append(ctx.payload.n)

    return work, handled


def insert_row(
    jobs: Jobs, status: str, at: datetime, job_name: str = NAME, **columns: Any
) -> str:
    """Write one row straight into the test's database, every timestamp ``at``."""
    stamp = at
    values: dict[str, Any] = {
        "created_at": stamp,
        "updated_at": stamp,
        "job_name": job_name,
        "status": status,
        "payload": json.dumps({"n": 0}),
    }
    if status == "scheduled":
        values["scheduled_at"] = stamp
    if status in ("running",) + TERMINAL:
        values.update(started_at=stamp, attempt=1)
    if status in TERMINAL:
        values["completed_at"] = stamp
    values.update(columns)
    return outbox.insert_row(jobs, **values)


def row_of(jobs: Jobs, execution_id: str) -> Any:
    row = jobs.get_execution(execution_id)
    assert row is not None, f"row {execution_id} is gone"
    return row


def immediate(recording: RecordingDispatcher) -> list[str]:
    """Ids dispatched for delivery now (delayed dispatches are held elsewhere)."""
    return [
        execution_id for _, execution_id, delay in recording.dispatched if not delay
    ]


def count(jobs: Jobs, status: str) -> int:
    return jobs.executions(NAME, status=status).total_elements


# §5.1: when the sweep runs


def test_start_runs_one_sweep(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.8: a due row left by an earlier process is promoted at ``start()``."""
    jobs = make_jobs(dispatcher=recording)
    work_job(jobs)
    due = insert_row(jobs, "scheduled", datetime.now(timezone.utc) - HOUR)

    jobs.start()

    assert row_of(jobs, due).status == "pending"
    assert immediate(recording) == [due]


def test_sweep_does_nothing_while_stopping(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.1: once ``stop()`` has begun (here: draining a run), the sweep is a no-op."""
    jobs = make_jobs(dispatcher=recording)
    started, release = threading.Event(), threading.Event()

    @jobs.job("sweep.block", schema=Work)
    def block(ctx: JobContext[Work]) -> None:
        """Hold the run until released."""
        started.set()
        release.wait(10)

    work_job(jobs)
    jobs.start()
    due = insert_row(jobs, "scheduled", datetime.now(timezone.utc) - HOUR)
    block.push({"n": 1})
    runner = threading.Thread(target=recording.deliver_all)
    runner.start()
    assert started.wait(10)
    stopper = threading.Thread(target=jobs.stop, kwargs={"timeout": 10})
    stopper.start()
    try:
        assert wait_until(lambda: jobs.stopping)
        report = jobs.sweep()
        assert report == SweepReport()
        assert row_of(jobs, due).status == "scheduled"
    finally:
        release.set()
        runner.join(10)
        stopper.join(10)


@pytest.mark.parametrize("failing", ["due_scheduled", "stale_pending", "running"])
def test_a_failing_phase_does_not_stop_the_others(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing: str,
) -> None:
    """§5.1: each phase has its own error handler."""
    jobs = make_jobs(dispatcher=recording)
    work_job(jobs)
    old = NOW - 4 * HOUR
    rows = {
        "due_scheduled": insert_row(jobs, "scheduled", old),
        "stale_pending": insert_row(jobs, "pending", old),
        "running": insert_row(jobs, "running", old),
    }

    def broken(*args: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(jobs.store, failing, broken)
    with freeze_time(NOW), caplog.at_level(logging.ERROR, "alepha_jobs.sweep"):
        jobs.sweep()

    untouched = {"due_scheduled": "scheduled", "stale_pending": "pending"}
    for query, execution_id in rows.items():
        row = row_of(jobs, execution_id)
        if query == failing:
            assert row.status == untouched.get(query, "running")
            assert row.redispatch_count == 0
        elif query == "due_scheduled":
            assert row.status == "pending"
        elif query == "stale_pending":
            assert row.redispatch_count == 1
        else:
            assert row.status == "error"
    assert "failed; the other phases still run" in caplog.text


# §12.9


def test_dispatch_scheduled_leaves_a_row_that_is_not_due(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#74"""
    jobs = make_jobs(dispatcher=recording)
    job, handled = work_job(jobs)
    with freeze_time(NOW):
        execution_id = job.push({"n": 1}, delay=HOUR)
        jobs.dispatch_scheduled(NAME, execution_id)
        recording.deliver_all()

    row = row_of(jobs, execution_id)
    assert (row.status, row.attempt) == ("scheduled", 0)
    assert immediate(recording) == []
    assert handled == []


def test_promote_due_does_not_resurrect_a_row_cancelled_after_the_select(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#75: the snapshot says ``scheduled``; the guarded update sees ``cancelled``."""
    jobs = make_jobs(dispatcher=recording)
    job, handled = work_job(jobs)
    select = jobs.store.due_scheduled

    def select_then_cancel(now: datetime, limit: int) -> Any:
        rows = select(now, limit)
        for row in rows:
            jobs.cancel(row.id)
        return rows

    monkeypatch.setattr(jobs.store, "due_scheduled", select_then_cancel)
    with freeze_time(NOW) as frozen:
        execution_id = job.push({"n": 1}, delay=60)
        frozen.tick(2 * HOUR)
        report = jobs.sweep()
        recording.deliver_all()

    assert report.promoted == 0
    assert row_of(jobs, execution_id).status == "cancelled"
    assert handled == []


def test_redispatch_is_not_sent_when_the_row_was_claimed_after_the_select(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """§5.3 step 3: count first; a re-dispatch that cannot be counted is not sent."""
    jobs = make_jobs(dispatcher=recording)
    work_job(jobs)
    stale = insert_row(jobs, "pending", NOW - 4 * HOUR)
    select = jobs.store.stale_pending

    def select_then_claim(cutoff: datetime, limit: int) -> Any:
        rows = select(cutoff, limit)
        for row in rows:
            jobs.store.claim(row.id, NOW)
        return rows

    monkeypatch.setattr(jobs.store, "stale_pending", select_then_claim)
    with freeze_time(NOW):
        report = jobs.sweep()

    row = row_of(jobs, stale)
    assert (row.status, row.redispatch_count) == ("running", 0)
    assert report.redispatched == 0
    assert recording.dispatched == []


def test_heartbeat_interval_is_a_third_of_the_crash_threshold() -> None:
    """#79 / §4.5: ``max(250 ms, crash_threshold / 3)``."""
    assert beat_interval(timedelta(seconds=2)) == pytest.approx(2 / 3)
    assert beat_interval(timedelta(milliseconds=300)) == 0.25


class FailingRenewal:
    """The real outbox, except that lease renewal fails with ``failure``."""

    def __init__(self, store: Store, failure: Exception) -> None:
        self.store = store
        self.failure = failure

    def renew(self, ids: Iterable[str], now: datetime) -> set[str]:
        raise self.failure

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def claimed_row(jobs: Jobs) -> str:
    """A ``running`` row, claimed as a worker would, that no handler runs here."""
    job, _ = work_job(jobs)
    execution_id = job.push({"n": 1})
    assert jobs.store.claim(execution_id, NOW) is not None
    return execution_id


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("network blip"), StoreError("SQLite database: disk I/O error")],
    ids=["generic", "database"],
)
def test_heartbeat_keeps_renewing_after_a_failed_beat(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    db_url: str,
    failure: Exception,
) -> None:
    """#76: transient errors must not stop the heartbeat."""
    jobs = make_jobs(dispatcher=recording)
    with freeze_time(NOW):
        execution_id = claimed_row(jobs)
    lease = Lease(FailingRenewal(jobs.store, failure))  # type: ignore[arg-type]
    try:
        lease.hold(execution_id, 3600)
        lease.beat()
        assert lease.holds(execution_id)
    finally:
        lease.stop()
    assert row_of(jobs, execution_id).status == "running"


@pytest.mark.parametrize("ending", ["cancelled", "deleted"])
def test_heartbeat_drops_a_row_that_is_no_longer_running(
    make_jobs: MakeJobs, recording: RecordingDispatcher, ending: str
) -> None:
    """#76: "not found" or not ``running`` any more stops renewing that row."""
    jobs = make_jobs(dispatcher=recording)
    with freeze_time(NOW):
        execution_id = claimed_row(jobs)
        kept = insert_row(jobs, "running", NOW)
    if ending == "cancelled":
        jobs.cancel(execution_id)
    else:
        with outbox.connect(jobs) as raw:
            raw.execute("DELETE FROM job_executions WHERE id = ?", (execution_id,))
    lease = Lease(jobs.store)
    try:
        lease.hold(execution_id, 3600)
        lease.hold(kept, 3600)
        with freeze_time(NOW + timedelta(minutes=5)):
            lease.beat()
        assert not lease.holds(execution_id)
        assert lease.holds(kept)
    finally:
        lease.stop()
    assert row_of(jobs, kept).updated_at == NOW + timedelta(minutes=5)


def test_recently_renewed_run_is_not_recovered(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#77: ``started_at`` 2 h old but a fresh lease: the row stays ``running``."""
    jobs = make_jobs(dispatcher=recording)
    with freeze_time(NOW) as frozen:
        execution_id = claimed_row(jobs)
        frozen.tick(2 * HOUR)
        assert jobs.store.renew([execution_id], NOW + 2 * HOUR) == {execution_id}
        report = jobs.sweep()

    row = row_of(jobs, execution_id)
    assert (row.status, row.attempt, row.error) == ("running", 1, None)
    assert report.recovered == 0


def test_expired_lease_without_retry_ends_in_error_naming_both_times(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#78: the synthetic error records when the run started and was last alive."""
    jobs = make_jobs(dispatcher=recording)
    errors: list[JobEvent] = []
    jobs.on("job:error", errors.append)
    renewed = NOW + timedelta(minutes=10)
    with freeze_time(NOW) as frozen:
        execution_id = claimed_row(jobs)
        jobs.store.renew([execution_id], renewed)
        frozen.move_to(renewed + 2 * HOUR)
        report = jobs.sweep()

    row = row_of(jobs, execution_id)
    assert (row.status, row.attempt) == ("error", 1)
    assert row.error.startswith("Execution assumed crashed")
    assert f"started {to_text(NOW)}" in row.error
    assert f"lease last renewed {to_text(renewed)}" in row.error
    assert "no renewal within 1800s" in row.error
    assert report.recovered == 1
    assert [e.execution_id for e in errors] == [execution_id]


def test_expired_lease_with_retries_left_schedules_a_retry(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.2 recover-crashed runs the normal failure handling (T16)."""
    jobs = make_jobs(dispatcher=recording, random=lambda: 0.5)
    job, _ = work_job(jobs, retry=Retry(1))
    with freeze_time(NOW) as frozen:
        execution_id = job.push({"n": 1})
        jobs.store.claim(execution_id, NOW)
        frozen.tick(2 * HOUR)
        jobs.sweep()

    row = row_of(jobs, execution_id)
    assert (row.status, row.attempt) == ("scheduled", 1)
    assert row.error.startswith("Execution assumed crashed")
    assert row.scheduled_at == NOW + 2 * HOUR + timedelta(seconds=2.5)


def test_run_alive_in_this_process_is_not_recovered(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.2 per-row check (a): a run this process is executing is never "crashed"."""
    jobs = make_jobs(dispatcher=recording)
    started, release = threading.Event(), threading.Event()

    @jobs.job(NAME, schema=Work)
    def slow(ctx: JobContext[Work]) -> None:
        """Hold the run until released."""
        started.set()
        release.wait(10)

    with freeze_time(NOW) as frozen:
        execution_id = slow.push({"n": 1})
        runner = threading.Thread(target=recording.deliver_all)
        runner.start()
        try:
            assert started.wait(10)
            frozen.tick(2 * HOUR)
            report = jobs.sweep()
            assert row_of(jobs, execution_id).status == "running"
        finally:
            release.set()
            runner.join(10)
    assert report.recovered == 0
    assert jobs.get_execution(execution_id) is None  # it then finished normally


def test_heartbeat_renews_the_lease_while_the_handler_runs(make_jobs: MakeJobs) -> None:
    """#79: ``timeout`` 1 s gives a 666 ms heartbeat; ``updated_at`` moves on."""
    jobs = make_jobs()
    started, release = threading.Event(), threading.Event()

    @jobs.job(NAME, schema=Work, timeout=1)
    def slow(ctx: JobContext[Work]) -> None:
        """Run for up to 1.5 s, ignoring the timeout signal."""
        started.set()
        release.wait(1.5)

    jobs.start()
    execution_id = slow.push({"n": 1})
    assert started.wait(10)
    claimed_at = row_of(jobs, execution_id).updated_at

    def renewed_while_running() -> bool:
        row = jobs.get_execution(execution_id)
        return (
            row is not None
            and row.status == "running"
            and (row.updated_at > claimed_at)
        )

    try:
        assert wait_until(renewed_while_running, timeout=5)
    finally:
        release.set()
    assert wait_until(lambda: jobs.get_execution(execution_id) is None)


def test_each_live_status_is_acted_on_by_exactly_one_phase(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#80: one 4-hour-old row per status; terminal rows are never touched."""
    jobs = make_jobs(dispatcher=recording)
    work_job(jobs)
    old = NOW - 4 * HOUR
    ids = {status: insert_row(jobs, status, old) for status in (
        "pending", "scheduled", "running", "ok", "error", "cancelled"
    )}  # fmt: skip
    before = {status: row_of(jobs, ids[status]) for status in TERMINAL}

    with freeze_time(NOW):
        report = jobs.sweep()

    assert report == SweepReport(promoted=1, redispatched=1, recovered=1)
    pending = row_of(jobs, ids["pending"])
    assert (pending.status, pending.redispatch_count) == ("pending", 1)
    promoted = row_of(jobs, ids["scheduled"])
    assert (promoted.status, promoted.redispatch_count) == ("pending", 0)
    assert promoted.updated_at == NOW
    recovered = row_of(jobs, ids["running"])
    assert recovered.status == "error"
    assert recovered.error.startswith("Execution assumed crashed")
    assert Counter(immediate(recording)) == Counter([ids["pending"], ids["scheduled"]])
    assert {status: row_of(jobs, ids[status]) for status in TERMINAL} == before


def test_full_batches_drain_over_successive_ticks(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """#81: batch size 3 over 7 due rows: 3, 3, 1, then nothing."""
    jobs = make_jobs(dispatcher=recording, sweep_batch_size=3)
    job, handled = work_job(jobs)
    progress: list[tuple[int, int]] = []
    with freeze_time(NOW) as frozen:
        for n in range(7):
            job.push({"n": n}, delay=timedelta(minutes=n + 1))
        frozen.tick(HOUR)
        with caplog.at_level(logging.INFO, "alepha_jobs.sweep"):
            for _ in range(4):
                jobs.sweep()
                recording.deliver_all()
                progress.append((count(jobs, "scheduled"), len(handled)))

    assert progress == [(4, 3), (1, 6), (0, 7), (0, 7)]
    assert handled == list(range(7))  # oldest due first, each exactly once
    assert "promote-due filled its batch of 3" in caplog.text


def test_lost_deliveries_are_redispatched_then_failed(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#82: a dispatcher that never delivers; max_redispatch 2, threshold 0."""
    jobs = make_jobs(dispatcher=recording, max_redispatch=2, stale_threshold=0)
    job, handled = work_job(jobs, retry=Retry(5))
    errors: list[JobEvent] = []
    jobs.on("job:error", errors.append)
    observed: list[tuple[str, int, int]] = []
    with freeze_time(NOW):
        execution_id = job.push({"n": 1})
        assert len(recording.dispatched) == 1
        for _ in range(4):
            jobs.sweep()
            row = row_of(jobs, execution_id)
            observed.append(
                (row.status, row.redispatch_count, len(recording.dispatched))
            )

    assert observed == [
        ("pending", 1, 2),
        ("pending", 2, 3),
        ("error", 2, 3),
        ("error", 2, 3),
    ]
    row = row_of(jobs, execution_id)
    assert row.attempt == 0
    assert row.error.startswith("Never claimed after 2 sweep re-dispatch(es)")
    assert [str(e.error) for e in errors] == [row.error]
    assert handled == []


def test_lost_delivery_of_a_job_that_keeps_no_failures_is_deleted(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§5.3 T9': the never-claimed row is deleted when failures are not recorded."""
    jobs = make_jobs(dispatcher=recording, max_redispatch=0, stale_threshold=0)

    @jobs.job(NAME, schema=Work, retention=Retention(error=False))
    def forget(ctx: JobContext[Work]) -> None:
        """Never delivered."""

    with freeze_time(NOW):
        execution_id = forget.push({"n": 1})
        report = jobs.sweep()

    assert report.never_claimed == 1
    assert jobs.get_execution(execution_id) is None


def test_rows_of_unregistered_jobs_are_ignored_by_sweep_and_kept_live_by_trim(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#83 with DESIGN §8.2: the trim deletes orphans' terminal rows only."""
    jobs = make_jobs(dispatcher=recording)
    work_job(jobs)
    old = NOW - 4 * HOUR
    ours = insert_row(jobs, "pending", old)
    orphans = {
        status: insert_row(jobs, status, old, job_name="gone.work")
        for status in ("pending", "scheduled", "running", "ok", "error")
    }
    before = {status: row_of(jobs, i) for status, i in orphans.items()}

    with freeze_time(NOW):
        report = jobs.sweep()

    assert report == SweepReport(redispatched=1)
    assert row_of(jobs, ours).redispatch_count == 1
    assert immediate(recording) == [ours]
    assert {status: row_of(jobs, i) for status, i in orphans.items()} == before

    with freeze_time(NOW):
        jobs.trim()

    for status, execution_id in orphans.items():
        gone = jobs.get_execution(execution_id) is None
        assert gone == (status in TERMINAL), status
    assert row_of(jobs, ours).status == "pending"
