"""Start-up, shutdown and draining: SPEC §5.8 and DESIGN §4 (threads), §8.10."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, PushItem
from alepha_jobs.definition import Job

from .conftest import MakeJobs, RecordingDispatcher, wait_until


class Work(BaseModel):
    n: int


def counting_job(jobs: Jobs) -> tuple[Job, list[int]]:
    done: list[int] = []

    @jobs.job("life.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        done.append(ctx.payload.n)

    return work, done


def wait_for_shutdown(jobs: Jobs) -> None:
    """Return the moment ``stop()`` has begun: a short spin rather than a timed
    wait, so the handler ends while the rest of the shutdown is under way."""
    deadline = time.monotonic() + 5
    while not jobs.stopping:
        if time.monotonic() > deadline:
            raise AssertionError("stop() never began")


def status_of(jobs: Jobs, execution_id: str) -> str | None:
    row = jobs.get_execution(execution_id)
    return None if row is None else row.status


def test_a_with_block_starts_and_stops_the_runtime(make_jobs: MakeJobs) -> None:
    """§5.8: ``with jobs:`` runs pushes inside and stops on exit."""
    jobs = make_jobs()
    work, done = counting_job(jobs)

    with jobs:
        work.push({"n": 1})
        assert jobs.drain(5)
    late = work.push({"n": 2})

    assert done == [1]
    assert jobs.stopping
    assert status_of(jobs, late) == "pending"


def test_starting_twice_is_harmless(make_jobs: MakeJobs) -> None:
    """§5.8: a second ``start()`` starts no second set of threads."""
    jobs = make_jobs()
    work, done = counting_job(jobs)

    assert jobs.start() is jobs
    threads = {t.name for t in threading.enumerate()}
    assert jobs.start() is jobs
    work.push({"n": 1})
    assert jobs.drain(5)

    pickers = [t for t in threading.enumerate() if t.name == "alepha-jobs-pickup"]
    assert len(pickers) == 1
    assert "alepha-jobs-pickup" in threads
    assert done == [1]


def test_stop_waits_for_a_running_handler_and_returns_true(
    make_jobs: MakeJobs,
) -> None:
    """§5.8 step 2: in-flight runs settle before ``stop()`` returns."""
    jobs = make_jobs()
    finished = threading.Event()
    started = threading.Event()
    aborted: list[bool] = []

    @jobs.job("life.slow", schema=Work)
    def slow(ctx: JobContext[Work]) -> None:
        """Keep working for 0.2 s after shutdown began, then finish."""
        started.set()
        wait_for_shutdown(jobs)
        aborted.append(ctx.signal.wait(0.2))
        finished.set()

    jobs.start()
    execution_id = slow.push({"n": 1})
    assert started.wait(5)

    assert jobs.stop() is True
    assert finished.is_set()
    assert aborted == [False]  # the drain did not fire the signal
    assert status_of(jobs, execution_id) is None  # succeeded, not recorded


@pytest.mark.parametrize(
    ("config", "stop"),
    [
        ({"drain_timeout": 0.2}, lambda jobs: jobs.stop()),
        ({}, lambda jobs: jobs.stop(timeout=0.2)),
    ],
    ids=["drain_timeout", "stop_timeout"],
)
def test_a_handler_still_running_after_the_drain_timeout_is_aborted(
    make_jobs: MakeJobs,
    config: dict[str, Any],
    stop: Callable[[Jobs], bool],
) -> None:
    """§5.8 step 3, §7: the signal fires with reason ``shutdown``; stop says
    not everything settled."""
    jobs = make_jobs(**config)
    started = threading.Event()
    reasons: list[str | None] = []

    @jobs.job("life.stubborn", schema=Work)
    def stubborn(ctx: JobContext[Work]) -> None:
        """Run until aborted."""
        started.set()
        ctx.signal.wait(5)
        reasons.append(ctx.signal.reason)

    jobs.start()
    stubborn.push({"n": 1})
    assert started.wait(5)

    assert stop(jobs) is False
    assert wait_until(lambda: reasons == ["shutdown"], timeout=5)


def test_rows_still_queued_at_stop_stay_pending_and_a_new_runtime_runs_them(
    make_jobs: MakeJobs,
) -> None:
    """§5.8 step 4, DESIGN §8.10: the in-memory FIFO is not drained; the rows
    wait in the outbox and the next runtime on the file picks them up."""
    jobs = make_jobs(direct_max_concurrency=1)
    started = threading.Event()
    ran: list[int] = []

    @jobs.job("life.work", schema=Work)
    def first_blocks(ctx: JobContext[Work]) -> None:
        """The first run blocks until shutdown has begun."""
        ran.append(ctx.payload.n)
        started.set()
        if ctx.payload.n == 0:
            wait_for_shutdown(jobs)

    jobs.start()
    ids = [first_blocks.push({"n": n}) for n in range(3)]
    assert started.wait(5)
    assert jobs.stop() is True

    assert ran == [0]
    assert [status_of(jobs, i) for i in ids[1:]] == ["pending", "pending"]

    successor = make_jobs(pickup_delay=0.1)
    rerun, done = counting_job(successor)
    successor.start()
    assert wait_until(lambda: sorted(done) == [1, 2], timeout=5)


@pytest.mark.parametrize(
    "push",
    [
        lambda job: [job.push({"n": 1})],
        lambda job: [job.push({"n": 1}, key="k")],
        lambda job: [job.push({"n": 1}, delay=0.01)],
        lambda job: job.push_many([{"n": 1}, PushItem({"n": 2}, key="k")]),
    ],
    ids=["push", "keyed", "delayed", "push_many"],
)
def test_after_stop_pushes_write_rows_but_dispatch_nothing(
    make_jobs: MakeJobs,
    recording: RecordingDispatcher,
    push: Callable[[Job], list[str]],
) -> None:
    """§5.8 step 1: dispatches are no-ops once stopping; the rows stay for the
    next process."""
    jobs = make_jobs(dispatcher=recording)
    work, _ = counting_job(jobs)
    jobs.start()
    jobs.stop()

    ids = push(work)

    assert recording.dispatched == []
    assert jobs.timekeeper.armed("promotion") == 0
    assert all(status_of(jobs, i) in ("pending", "scheduled") for i in ids)


def test_drain_is_true_when_idle_and_false_while_a_delayed_row_waits(
    make_jobs: MakeJobs,
) -> None:
    """``drain(timeout)`` counts queued, running and promotion-timer work."""
    jobs = make_jobs()
    work, done = counting_job(jobs)
    jobs.start()

    assert jobs.drain(1) is True
    work.push({"n": 1})
    assert jobs.drain(5) is True
    assert done == [1]

    work.push({"n": 2}, delay=60)
    assert jobs.drain(0.1) is False
    assert done == [1]


def test_a_stopped_runtime_can_be_started_again(make_jobs: MakeJobs) -> None:
    """§5.8: stop, then start, and pushes run again."""
    jobs = make_jobs()
    work, done = counting_job(jobs)

    jobs.start()
    work.push({"n": 1})
    assert jobs.drain(5)
    assert jobs.stop() is True

    jobs.start()
    work.push({"n": 2})
    assert jobs.drain(5)
    assert done == [1, 2]


def test_runtime_threads_are_named_alepha_jobs_and_are_daemons(
    make_jobs: MakeJobs,
) -> None:
    """DESIGN §4: every thread the runtime starts is an ``alepha-jobs-*`` daemon."""
    jobs = make_jobs()
    release = threading.Event()
    started = threading.Event()

    @jobs.job("life.slow", schema=Work, timeout=60)
    def slow(ctx: JobContext[Work]) -> None:
        """Hold a worker, a lease and a timeout timer until released."""
        started.set()
        release.wait(5)

    before = set(threading.enumerate())
    jobs.start()
    slow.push({"n": 1})
    slow.push({"n": 2}, delay=60)
    assert started.wait(5)
    new = [t for t in threading.enumerate() if t not in before]
    release.set()

    assert new
    assert all(t.name.startswith("alepha-jobs-") for t in new), [t.name for t in new]
    assert all(t.daemon for t in new)
    assert {
        "alepha-jobs-direct-1",
        "alepha-jobs-lease",
        "alepha-jobs-pickup",
        "alepha-jobs-scheduler",
        "alepha-jobs-timekeeper",
    } <= {t.name for t in new}


def test_the_registry_lists_jobs_and_is_read_only(make_jobs: MakeJobs) -> None:
    """DESIGN §3: ``jobs.registry`` maps names to jobs and cannot be changed."""
    jobs = make_jobs()
    work, _ = counting_job(jobs)

    @jobs.job("life.other", schema=Work)
    def other(ctx: JobContext[Work]) -> None:
        """Another job."""

    assert dict(jobs.registry) == {"life.work": work, "life.other": other}
    with pytest.raises(TypeError):
        jobs.registry["life.third"] = work  # type: ignore[index]
    with pytest.raises(TypeError):
        del jobs.registry["life.work"]  # type: ignore[attr-defined]
    assert list(jobs.registry) == ["life.work", "life.other"]
