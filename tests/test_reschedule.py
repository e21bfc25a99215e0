"""Handler-side ``reschedule`` in direct mode with frozen time: SPEC §2.6 and
§12.7 (#64-#67)."""

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
    Backoff,
    InvalidArgumentError,
    JobContext,
    JobEvent,
    JobUsageError,
    PayloadError,
    Retry,
)

from .conftest import MakeJobs, wait_until

FROZEN = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Stage(BaseModel):
    stage: int | None = None


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(FROZEN, ignore=["_pytest.timing"]) as factory:
        yield factory


class Recorder:
    """Collects events and lets a test wait for the n-th ``job:end``."""

    def __init__(self, jobs: Any) -> None:
        self.events: list[JobEvent] = []
        self._cond = threading.Condition()
        for name in ("job:begin", "job:success", "job:error", "job:cancel", "job:end"):
            jobs.on(name, self._record)

    def _record(self, event: JobEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def names(self) -> list[str]:
        with self._cond:
            return [e.event for e in self.events]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def wait_ends(self, n: int, timeout: float = 5) -> bool:
        return wait_until(lambda: self.count("job:end") >= n, timeout)


def advance(jobs: Any, frozen: FrozenDateTimeFactory, delta: timedelta) -> None:
    frozen.tick(delta)
    jobs.timekeeper.poke()


def test_a_rescheduled_run_parks_its_row_and_the_next_stage_runs_later(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """#64: stage 1 parks the row for stage 2; a keyed push lands on it; no
    ``job:success`` until the last stage, but ``job:end`` for each run."""
    jobs = make_jobs()
    recorder = Recorder(jobs)
    runs: list[tuple[int | None, int]] = []

    @jobs.job("app.stages", schema=Stage)
    def stages(ctx: JobContext[Stage]) -> None:
        """Run one stage."""
        runs.append((ctx.payload.stage, ctx.attempt))
        if ctx.payload.stage == 1:
            ctx.reschedule(delay=timedelta(minutes=1), payload={"stage": 2})

    jobs.start()
    execution_id = stages.push({"stage": 1}, key="seq")
    assert recorder.wait_ends(1)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "scheduled"
    assert row.payload == {"stage": 2}
    assert row.key == "seq"
    assert row.attempt == 0
    assert row.redispatch_count == 0
    assert row.scheduled_at is not None
    assert row.scheduled_at - FROZEN > timedelta(seconds=50)
    assert stages.push({"stage": 9}, key="seq") == execution_id
    assert runs == [(1, 1)]
    assert recorder.names() == ["job:begin", "job:end"]
    assert jobs.timekeeper.armed("promotion") == 1

    advance(jobs, frozen, timedelta(minutes=2))
    assert recorder.wait_ends(2)
    assert jobs.drain(5)

    assert runs == [(1, 1), (2, 1)]
    assert jobs.get_execution(execution_id) is None
    assert recorder.count("job:success") == 1


def test_a_park_keeps_max_attempts_and_gives_the_next_stage_its_retries(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """§2.6: ``id``, ``key`` and ``max_attempts`` are kept; ``attempt`` restarts."""
    jobs = make_jobs(retry_backoff_base=1, retry_backoff_max=1, random=lambda: 1)
    recorder = Recorder(jobs)
    attempts: list[tuple[int | None, int]] = []

    @jobs.job("app.stages", schema=Stage, retry=Retry(1))
    def stages(ctx: JobContext[Stage]) -> None:
        """Stage 1 parks; stage 2 fails once, then succeeds."""
        attempts.append((ctx.payload.stage, ctx.attempt))
        if ctx.payload.stage == 1:
            ctx.reschedule(delay=60, payload={"stage": 2})
        elif ctx.attempt == 1:
            raise RuntimeError("flaky")

    jobs.start()
    execution_id = stages.push({"stage": 1})
    assert recorder.wait_ends(1)
    row = jobs.get_execution(execution_id)
    assert row is not None and row.max_attempts == 2

    advance(jobs, frozen, timedelta(minutes=2))
    assert recorder.wait_ends(2)
    advance(jobs, frozen, timedelta(seconds=2))
    assert recorder.wait_ends(3)
    assert jobs.drain(5)

    assert attempts == [(1, 1), (2, 1), (2, 2)]
    assert jobs.get_execution(execution_id) is None


def test_the_last_reschedule_call_wins(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """§2.6: options are resolved at call time; the last call wins."""
    jobs = make_jobs()
    recorder = Recorder(jobs)
    later = FROZEN + timedelta(hours=3)

    @jobs.job("app.stages", schema=Stage)
    def stages(ctx: JobContext[Stage]) -> None:
        """Change its mind."""
        ctx.reschedule(delay=60, payload={"stage": 2})
        ctx.reschedule(scheduled_at=later, payload={"stage": 3})

    jobs.start()
    execution_id = stages.push({"stage": 1})
    assert recorder.wait_ends(1)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "scheduled"
    assert row.scheduled_at == later
    assert row.payload == {"stage": 3}


def test_a_reschedule_without_a_payload_keeps_the_current_one(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    jobs = make_jobs()
    recorder = Recorder(jobs)

    @jobs.job("app.stages", schema=Stage)
    def stages(ctx: JobContext[Stage]) -> None:
        """Wait a minute."""
        ctx.reschedule(delay=60)

    jobs.start()
    execution_id = stages.push({"stage": 5})
    assert recorder.wait_ends(1)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "scheduled"
    assert row.payload == {"stage": 5}
    assert row.scheduled_at == FROZEN + timedelta(minutes=1)


def test_a_cancel_during_the_run_drops_the_reschedule(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """#65: the park is guarded on ``running``; the row stays ``cancelled``."""
    jobs = make_jobs()
    recorder = Recorder(jobs)
    started = threading.Event()
    proceed = threading.Event()
    runs: list[int | None] = []

    @jobs.job("app.stages", schema=Stage)
    def stages(ctx: JobContext[Stage]) -> None:
        """Wait for the test, then try to park."""
        runs.append(ctx.payload.stage)
        started.set()
        proceed.wait(5)
        ctx.reschedule(delay=60, payload={"stage": 2})

    jobs.start()
    execution_id = stages.push({"stage": 1}, key="seq")
    assert started.wait(5)
    stages.cancel(execution_id)
    proceed.set()
    assert recorder.wait_ends(1)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "cancelled"
    assert row.key is None
    assert row.payload == {"stage": 1}
    assert jobs.timekeeper.armed("promotion") == 0

    advance(jobs, frozen, timedelta(minutes=2))
    jobs.sweep()
    assert jobs.drain(5)
    assert runs == [1]
    assert jobs.get_execution(execution_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_raise_after_reschedule_retries_the_old_payload_on_the_retry_curve(
    make_jobs: MakeJobs, frozen: FrozenDateTimeFactory
) -> None:
    """#66: the intent is discarded; ``scheduled_at`` follows the backoff (1 min),
    not the hour the reschedule asked for."""
    jobs = make_jobs()
    recorder = Recorder(jobs)

    @jobs.job(
        "app.stages",
        schema=Stage,
        retry=Retry(2, backoff=Backoff(initial=timedelta(minutes=1), jitter=False)),
    )
    def stages(ctx: JobContext[Stage]) -> None:
        """Ask to park, then fail."""
        ctx.reschedule(delay=timedelta(hours=1), payload={"stage": 2})
        raise RuntimeError("boom")

    jobs.start()
    execution_id = stages.push({})
    assert recorder.wait_ends(1)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "scheduled"
    assert row.payload == {"stage": None}
    assert row.attempt == 1
    assert row.error == "boom"
    assert row.scheduled_at is not None
    ahead = row.scheduled_at - FROZEN
    assert timedelta(seconds=55) <= ahead <= timedelta(seconds=65)
    assert recorder.names() == ["job:begin", "job:error", "job:end"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, JobUsageError),
        ({"delay": 60, "payload": {"stage": "not a number"}}, PayloadError),
        ({"scheduled_at": datetime(2030, 1, 1)}, InvalidArgumentError),
    ],
    ids=["no-time", "invalid-payload", "naive-datetime"],
)
def test_a_bad_reschedule_raises_inside_the_handler_where_it_can_be_caught(
    make_jobs: MakeJobs,
    frozen: FrozenDateTimeFactory,
    options: dict[str, Any],
    expected: type[Exception],
) -> None:
    """#67: the error is raised at call time, and a caught one records no intent."""
    jobs = make_jobs()
    recorder = Recorder(jobs)
    caught: list[BaseException] = []

    @jobs.job("app.stages", schema=Stage)
    def stages(ctx: JobContext[Stage]) -> None:
        """Try a bad reschedule and carry on."""
        try:
            ctx.reschedule(**options)
        except Exception as error:
            caught.append(error)

    jobs.start()
    execution_id = stages.push({"stage": 1})
    assert recorder.wait_ends(1)
    assert jobs.drain(5)

    assert len(caught) == 1
    assert isinstance(caught[0], expected)
    assert jobs.get_execution(execution_id) is None
    assert recorder.count("job:success") == 1
