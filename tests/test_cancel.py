"""Cancellation in direct mode: SPEC §2.3, §2.4, §12.7 (#68-#70) and §12.8
(#71-#73)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from pydantic import BaseModel

from alepha_jobs import (
    AbortedError,
    ExecutionNotFoundError,
    InvalidStateError,
    JobContext,
    JobEvent,
    JobNotFoundError,
    Retention,
    Rule,
)

from .conftest import MakeJobs, RecordingDispatcher, wait_until

FROZEN = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


class Num(BaseModel):
    n: int


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(FROZEN, ignore=["_pytest.timing"]) as factory:
        yield factory


def record_events(jobs: Any) -> list[JobEvent]:
    seen: list[JobEvent] = []
    for name in ("job:begin", "job:success", "job:error", "job:cancel", "job:end"):
        jobs.on(name, seen.append)
    return seen


# cancel (§2.3)


def test_cancelling_a_delayed_row_marks_it_cancelled_and_frees_its_key(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """#71."""
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, key="k", delay=HOUR)
    work.cancel(execution_id)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "cancelled"
    assert row.key is None
    assert row.completed_at == FROZEN
    assert row.error is None


def test_cancel_records_who_cancelled(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#70."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, delay=HOUR)
    work.cancel(execution_id, cancelled_by="user-7", cancelled_by_name="Ada")

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "cancelled"
    assert row.cancelled_by == "user-7"
    assert row.cancelled_by_name == "Ada"


def test_cancelling_a_delayed_row_without_recorded_errors_deletes_it(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#73: cancellations follow the ``error`` rule."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num, retention=Retention(error=False))
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, delay=HOUR)
    work.cancel(execution_id)

    assert jobs.get_execution(execution_id) is None


def test_a_cancelled_delayed_row_never_runs(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    jobs = make_jobs()
    calls: list[int] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Count."""
        calls.append(ctx.payload.n)

    jobs.start()
    execution_id = work.push({"n": 1}, delay=60)
    work.cancel(execution_id)
    frozen.tick(timedelta(minutes=2))
    jobs.timekeeper.poke()

    assert wait_until(lambda: jobs.timekeeper.armed("promotion") == 0)
    jobs.sweep()
    assert jobs.drain(5)
    assert calls == []
    assert jobs.get_execution(execution_id).status == "cancelled"  # type: ignore[union-attr]


def test_cancelling_a_pending_row_emits_no_event_and_its_dispatch_is_dropped(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.3 notes: no event for a non-running row; a dispatch still queued for
    it fails the claim."""
    jobs = make_jobs(dispatcher=recording)
    seen = record_events(jobs)
    calls: list[int] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Count."""
        calls.append(ctx.payload.n)

    execution_id = work.push({"n": 1})
    work.cancel(execution_id)
    recording.deliver_all()

    assert seen == []
    assert calls == []
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "cancelled"
    assert row.attempt == 0


def test_cancelling_an_unknown_id_raises_not_found(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    with pytest.raises(ExecutionNotFoundError, match="Execution not found: nope"):
        jobs.cancel("nope")
    with pytest.raises(ExecutionNotFoundError, match="Execution not found: nope"):
        work.cancel("nope")


def _ended_row(jobs: Any, work: Any, status: str) -> str:
    """Leave one row of ``work`` in the terminal ``status``; return its id."""
    if status == "ok":
        return str(work.push({"n": 1}, inline=True))
    if status == "error":
        with pytest.raises(RuntimeError):
            work.push({"n": 0}, inline=True)
        (row,) = jobs.executions("app.work").content
        return str(row.id)
    execution_id = work.push({"n": 1}, delay=HOUR)
    work.cancel(execution_id)
    return str(execution_id)


@pytest.mark.parametrize("status", ["ok", "error", "cancelled"])
def test_cancelling_an_ended_row_raises_invalid_state(
    make_jobs: MakeJobs, status: str
) -> None:
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num, retention=Retention(ok=Rule(last=10)))
    def work(ctx: JobContext[Num]) -> None:
        """Fail on zero."""
        if ctx.payload.n == 0:
            raise RuntimeError("zero")

    execution_id = _ended_row(jobs, work, status)
    assert jobs.get_execution(execution_id).status == status  # type: ignore[union-attr]

    with pytest.raises(
        InvalidStateError, match=f"Cannot cancel execution in '{status}' status"
    ):
        work.cancel(execution_id)
    assert jobs.get_execution(execution_id).status == status  # type: ignore[union-attr]


def test_cancelling_a_running_row_fires_its_signal_and_emits_job_cancel(
    make_jobs: MakeJobs,
) -> None:
    """#72: the handler raises on abort; the row stays ``cancelled`` with no
    error, and neither ``job:error`` nor ``job:success`` is emitted."""
    jobs = make_jobs()
    seen = record_events(jobs)
    started = threading.Event()
    observed: list[bool] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Wait to be cancelled."""
        started.set()
        observed.append(ctx.signal.wait(10))
        ctx.signal.raise_if_aborted()

    jobs.start()
    execution_id = work.push({"n": 1}, key="k")
    assert started.wait(5)
    work.cancel(execution_id, cancelled_by_name="Ada")

    assert jobs.drain(5)
    assert observed == [True]
    assert [e.event for e in seen] == ["job:begin", "job:cancel", "job:end"]
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "cancelled"
    assert row.error is None
    assert row.key is None
    assert row.cancelled_by_name == "Ada"
    jobs.sweep()
    assert jobs.get_execution(execution_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_cancelled_run_that_ignores_its_signal_still_leaves_the_row_cancelled(
    make_jobs: MakeJobs,
) -> None:
    """§7: the success write is guarded on ``running``; ``job:success`` is still
    emitted."""
    jobs = make_jobs()
    seen = record_events(jobs)
    started = threading.Event()
    proceed = threading.Event()

    @jobs.job("app.work", schema=Num, retention=Retention(ok=Rule(last=10)))
    def work(ctx: JobContext[Num]) -> None:
        """Ignore the signal."""
        started.set()
        proceed.wait(5)

    jobs.start()
    execution_id = work.push({"n": 1})
    assert started.wait(5)
    work.cancel(execution_id)
    proceed.set()

    assert jobs.drain(5)
    assert [e.event for e in seen] == ["job:begin", "job:success", "job:end"]
    assert jobs.get_execution(execution_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_cancelled_run_without_recorded_errors_is_deleted_after_job_cancel(
    make_jobs: MakeJobs,
) -> None:
    """§2.3 step 5: the abort path deletes the row once ``job:cancel`` fired."""
    jobs = make_jobs()
    seen = record_events(jobs)
    started = threading.Event()

    @jobs.job("app.work", schema=Num, retention=Retention(error=False))
    def work(ctx: JobContext[Num]) -> None:
        """Wait to be cancelled."""
        started.set()
        ctx.signal.wait(10)
        raise AbortedError("stopped")

    jobs.start()
    execution_id = work.push({"n": 1})
    assert started.wait(5)
    work.cancel(execution_id)

    assert jobs.drain(5)
    assert "job:cancel" in [e.event for e in seen]
    assert "job:error" not in [e.event for e in seen]
    assert jobs.get_execution(execution_id) is None


# cancel_by_key (§2.4, #68, #69)


def test_cancel_by_key_cancels_the_delayed_row_holding_the_key(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """#68: the id once, then ``None``; the handler never runs."""
    jobs = make_jobs()
    calls: list[int] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Count."""
        calls.append(ctx.payload.n)

    jobs.start()
    execution_id = work.push({"n": 1}, key="k", delay=HOUR)

    assert work.cancel_by_key("k", cancelled_by_name="Ada") == execution_id
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "cancelled"
    assert row.key is None
    assert row.cancelled_by_name == "Ada"
    assert work.cancel_by_key("k") is None
    assert work.cancel_by_key("never-used") is None

    frozen.tick(timedelta(hours=2))
    jobs.timekeeper.poke()
    assert wait_until(lambda: jobs.timekeeper.armed("promotion") == 0)
    jobs.sweep()
    assert jobs.drain(5)
    assert calls == []


def test_cancel_by_key_of_a_pending_row_emits_no_event(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)
    seen = record_events(jobs)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, key="k")

    assert jobs.cancel_by_key("app.work", "k") == execution_id
    assert seen == []


def test_cancel_by_key_without_recorded_errors_deletes_the_row(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num, retention=Retention(error=False))
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, key="k", delay=HOUR)

    assert work.cancel_by_key("k") == execution_id
    assert jobs.get_execution(execution_id) is None


def test_cancel_by_key_never_touches_a_running_row(make_jobs: MakeJobs) -> None:
    """#69: ``None``, the row stays ``running``, the signal does not fire, and
    the run completes normally."""
    jobs = make_jobs()
    seen = record_events(jobs)
    started = threading.Event()
    proceed = threading.Event()
    aborted: list[bool] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Wait for the test."""
        started.set()
        proceed.wait(5)
        aborted.append(ctx.signal.aborted)

    jobs.start()
    execution_id = work.push({"n": 1}, key="k")
    assert started.wait(5)

    assert work.cancel_by_key("k") is None
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "running"
    assert row.key == "k"
    proceed.set()

    assert jobs.drain(5)
    assert aborted == [False]
    assert "job:success" in [e.event for e in seen]
    assert jobs.get_execution(execution_id) is None


def test_cancel_by_key_of_an_unregistered_job_raises(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    with pytest.raises(JobNotFoundError, match="Job not registered: app.missing"):
        jobs.cancel_by_key("app.missing", "k")


def test_cancel_by_key_only_matches_its_own_job(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    @jobs.job("app.other", schema=Num)
    def other(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, key="k", delay=HOUR)

    assert other.cancel_by_key("k") is None
    assert jobs.get_execution(execution_id).status == "scheduled"  # type: ignore[union-attr]
