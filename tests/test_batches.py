"""Direct-mode batches, on by default: what they cost when a runtime stops or
dies mid-batch, and what never gets batched."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, Retention, Rule, clock
from alepha_jobs.dispatch.direct import BATCH_SIZE, DirectDispatcher
from alepha_jobs.execution import UNSTARTED_NOTE

from . import batch_worker
from .conftest import MakeJobs, RecordingDispatcher, record_batch_claims, wait_until

KEEP = Retention(ok=Rule(last=10_000), error=Rule(last=10_000))
ROOT = Path(__file__).resolve().parent.parent


class Work(BaseModel):
    n: int


def _statuses(jobs: Jobs, ids: list[str]) -> dict[str, str]:
    rows = {i: jobs.get_execution(i) for i in ids}
    return {i: row.status if row else "deleted" for i, row in rows.items()}


def test_the_default_dispatcher_batches_a_backlog_and_records_each_start(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = make_jobs(direct_max_concurrency=2)
    assert isinstance(jobs.dispatcher, DirectDispatcher)
    assert jobs.dispatcher.batch_size == BATCH_SIZE > 1
    ran: list[int] = []

    @jobs.job("batch.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        ran.append(ctx.payload.n)

    claims = record_batch_claims(monkeypatch, jobs)
    jobs.start()
    work.push_many([{"n": n} for n in range(5)])  # the runtime learns it is quick
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(100)])
    assert jobs.drain(30)

    assert sorted(ran) == sorted([*range(5), *range(100)])
    assert max(map(len, claims)) > 1
    for execution_id in ids:
        row = jobs.get_execution(execution_id)
        assert row is not None and row.status == "ok" and row.attempt == 1
        assert row.started_at is not None
        assert row.started_at <= row.completed_at  # type: ignore[operator]


def test_a_lone_push_never_waits_for_a_batch(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job pushed alone takes the one-row claim at once, even a quick one."""
    jobs = make_jobs(direct_max_concurrency=4)
    started = threading.Event()

    @jobs.job("batch.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Signal the start."""
        started.set()

    claims = record_batch_claims(monkeypatch, jobs)
    jobs.start()
    work.push_many([{"n": n} for n in range(5)])
    assert jobs.drain(10)
    for n in range(20):
        started.clear()
        work.push({"n": n})
        assert started.wait(10)
        assert jobs.drain(10)

    assert claims == []


def test_stop_mid_batch_gives_unstarted_rows_back_with_their_attempt(
    make_jobs: MakeJobs,
) -> None:
    """The rows a batch claimed but did not start when stop() began go back to
    ``pending`` with attempt 0; a later runtime runs each of them exactly once."""
    jobs = make_jobs(dispatcher=DirectDispatcher(1, batch_size=8))
    ran: list[int] = []
    entered, gate = threading.Event(), threading.Event()

    def handler(ctx: JobContext[Work]) -> None:
        """Record; hold the first row of the backlog until released."""
        ran.append(ctx.payload.n)
        if ctx.payload.n == 100:
            entered.set()
            gate.wait(30)

    work = jobs.job("batch.work", schema=Work, retention=KEEP)(handler)
    jobs.start()
    work.push_many([{"n": n} for n in range(5)])
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(100, 140)])
    assert entered.wait(10)
    stopper = threading.Thread(target=jobs.stop)
    stopper.start()
    assert wait_until(lambda: jobs.stopping)
    gate.set()
    stopper.join(30)

    assert ran[5:] == [100]
    rows = [jobs.get_execution(i) for i in ids]
    assert rows[0] is not None and rows[0].status == "ok"
    for row in rows[1:]:
        assert row is not None
        assert (row.status, row.attempt, row.started_at) == ("pending", 0, None)

    later = make_jobs()
    later.job("batch.work", schema=Work, retention=KEEP)(handler)
    later.start()
    assert wait_until(lambda: set(_statuses(later, ids).values()) == {"ok"}, 30)
    assert sorted(ran[5:]) == list(range(100, 140))  # each exactly once
    assert {later.get_execution(i).attempt for i in ids} == {1}  # type: ignore[union-attr]


def test_a_job_that_turns_slow_mid_batch_runs_the_rest_one_by_one(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mixed quick and slow runs: once a run is slow, the rest of its batch goes
    back to the queue, each row runs once, and a slow job is never batched."""
    jobs = make_jobs(dispatcher=DirectDispatcher(1, batch_size=8))
    ran: list[str] = []
    pause = threading.Event()

    @jobs.job("batch.quick", schema=Work, retention=KEEP)
    def quick(ctx: JobContext[Work]) -> None:
        """Quick, except number 100 (50 ms)."""
        ran.append(f"q{ctx.payload.n}")
        if ctx.payload.n == 100:
            pause.wait(0.05)

    @jobs.job("batch.slow", schema=Work, retention=KEEP)
    def slow(ctx: JobContext[Work]) -> None:
        """Always 10 ms."""
        ran.append(f"s{ctx.payload.n}")
        pause.wait(0.01)

    claims = record_batch_claims(monkeypatch, jobs)
    jobs.start()
    quick.push_many([{"n": n} for n in range(5)])
    slow.push_many([{"n": n} for n in range(3)])
    assert jobs.drain(10)
    claims.clear()
    slow_ids = slow.push_many([{"n": n} for n in range(10, 30)])
    quick_ids = quick.push_many([{"n": n} for n in range(100, 116)])
    assert jobs.drain(30)

    assert claims[0] == quick_ids[:8]  # released from 101 on, re-queued
    quick_order = [name for name in ran[8:] if name.startswith("q")]
    assert quick_order == [f"q{n}" for n in range(100, 116)]  # still next in line
    assert not {i for ids in claims for i in ids} & set(slow_ids)
    assert collections.Counter(ran[8:]) == collections.Counter(
        [f"s{n}" for n in range(10, 30)] + [f"q{n}" for n in range(100, 116)]
    )
    for execution_id in slow_ids + quick_ids:
        row = jobs.get_execution(execution_id)
        assert row is not None
        assert (row.status, row.attempt) == ("ok", 1)
        assert row.started_at is not None


def test_a_row_cancelled_while_waiting_in_a_batch_never_runs(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(dispatcher=DirectDispatcher(1, batch_size=8))
    ran: list[int] = []
    cancels: list[str] = []
    jobs.on("job:cancel", lambda event: cancels.append(event.execution_id))
    entered, gate = threading.Event(), threading.Event()

    @jobs.job("batch.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Record; hold the first row of the backlog until released."""
        ran.append(ctx.payload.n)
        if ctx.payload.n == 100:
            entered.set()
            gate.wait(30)

    jobs.start()
    work.push_many([{"n": n} for n in range(5)])
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(100, 110)])
    assert entered.wait(10)
    jobs.cancel(ids[3])
    gate.set()
    assert jobs.drain(30)

    assert 103 not in ran
    assert sorted(ran[5:]) == [n for n in range(100, 110) if n != 103]
    assert cancels == [ids[3]]
    row = jobs.get_execution(ids[3])
    assert row is not None and row.status == "cancelled"


def test_a_failure_in_a_batch_records_its_start(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(dispatcher=DirectDispatcher(1, batch_size=8))

    @jobs.job("batch.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Fail on 103."""
        if ctx.payload.n == 103:
            raise ValueError("bad 103")

    jobs.start()
    work.push_many([{"n": n} for n in range(5)])
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(100, 120)])
    assert jobs.drain(30)

    failed = jobs.get_execution(ids[3])
    assert failed is not None
    assert (failed.status, failed.error) == ("error", "bad 103")
    assert failed.started_at is not None


NOW = clock.from_text("2030-01-01T00:00:00.000Z")


def test_the_sweep_gives_a_dead_batch_row_back_once_then_counts_attempts(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """A row a dead process claimed in a batch goes back to ``pending`` without
    using an attempt; if it dies again (a handler that kills its process), the
    sweep recovers it as crashed, so a poison row still runs out of attempts."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("batch.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Unused: rows are moved by hand."""

    with freeze_time(NOW) as frozen:
        execution_id = work.push({"n": 1})
        assert [r.id for r in jobs.store.claim_batch([execution_id], NOW)] == [
            execution_id
        ]
        frozen.tick(timedelta(hours=2))
        report = jobs.sweep()

        row = jobs.get_execution(execution_id)
        assert row is not None and report.recovered == 1
        assert (row.status, row.attempt, row.error) == ("pending", 0, UNSTARTED_NOTE)
        assert recording.dispatched[-1][:2] == ("batch.work", execution_id)

        jobs.store.claim_batch([execution_id], clock.now())
        frozen.tick(timedelta(hours=2))
        jobs.sweep()

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt) == ("error", 1)
    assert row.error is not None and row.error.startswith("Execution assumed crashed")


def test_release_unstarted_leaves_started_and_moved_rows_alone(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs()

    @jobs.job("batch.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Unused: rows are moved by hand."""

    ids = work.push_many([{"n": n} for n in range(4)])
    store = jobs.store
    assert len(store.claim_batch(ids[:3], clock.now())) == 3
    assert store.claim_batch(ids[:3], clock.now()) == []
    assert store.mark_started(ids[0], clock.now())
    assert store.succeed_batch([(ids[1], [], True, clock.now())], clock.now()) == [True]

    assert store.release_unstarted(ids, clock.now()) == 1  # only ids[2]

    assert _statuses(jobs, ids) == {
        ids[0]: "running",
        ids[1]: "ok",
        ids[2]: "pending",
        ids[3]: "pending",
    }
    released = jobs.get_execution(ids[2])
    assert released is not None and released.attempt == 0
    done = jobs.get_execution(ids[1])
    assert done is not None and done.started_at is not None


@pytest.mark.slow
def test_sigkill_mid_batch_reruns_a_bounded_few_and_uses_no_attempt(
    make_jobs: MakeJobs, tmp_path: Path, db_url: str
) -> None:
    """A real child process killed with a batch half done: after the sweep every
    row ends ``ok`` on its first attempt (no retry is configured, so a used
    attempt would show as ``error``); rows the child never started run exactly
    once; at most a batch per worker runs twice."""
    out = tmp_path / "runs.txt"
    count, block_at = 64, 20
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.batch_worker", db_url, str(out)]
        + [str(count), str(block_at)],
        cwd=ROOT,
    )
    try:

        def child_runs() -> list[int]:
            if not out.exists():
                return []
            return [int(line) for line in out.read_text().split()]

        assert wait_until(lambda: block_at in child_runs(), 60)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    before = [n for n in child_runs() if n >= 0]

    jobs, _ = batch_worker.runtime(db_url, str(out), None)
    try:
        ids = [row.id for row in jobs.executions(size=100).content]
        jobs.start()

        def settled() -> bool:
            jobs.sweep()
            return set(_statuses(jobs, ids).values()) == {"ok"}

        assert wait_until(settled, 60)
        rows = [jobs.get_execution(i) for i in ids]
    finally:
        jobs.close()

    runs = collections.Counter(n for n in child_runs() if n >= 0)
    assert sorted(runs) == list(range(count))  # every row ran
    assert {row.attempt for row in rows if row} == {1}
    twice = [n for n, times in runs.items() if times > 1]
    assert block_at in twice
    assert len(twice) <= batch_worker.WORKERS * BATCH_SIZE
    assert set(twice) <= set(before)  # never started in the child: ran once
    blocked = [r for r in rows if r and r.payload == {"n": block_at}]
    assert blocked[0].error == UNSTARTED_NOTE
