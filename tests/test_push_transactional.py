"""Pushing to queue jobs in direct mode across runtimes: DESIGN §8.10 (pickup)
and §8.7 (push inside the caller's transaction). Plain pushes, keys, delays and
push_many are in test_push.py."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from alepha_jobs import InvalidArgumentError, JobContext, Jobs, JobUsageError

from .conftest import MakeJobs, wait_until
from .outbox import caller_transaction, connect, is_sqlite
from .postgres_service import admin_connection
from .push_support import Num, count_rows

# direct mode across runtimes (DESIGN §8.10) and the caller's transaction (§8.7)


def _register(jobs: Any, calls: list[int], ran: threading.Event) -> Any:
    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Collect and signal."""
        calls.append(ctx.payload.n)
        ran.set()

    return work


@pytest.mark.parametrize("started", [False, True], ids=["not-started", "no-consume"])
def test_a_runtime_that_does_not_consume_writes_the_row_and_runs_nothing(
    make_jobs: MakeJobs, started: bool
) -> None:
    """DESIGN §8.10: a CLI, a cron script or ``start(consume=False)``."""
    writer = make_jobs(pickup_delay=0.1)
    writer_calls: list[int] = []
    work = _register(writer, writer_calls, threading.Event())
    before = set(threading.enumerate())
    if started:
        writer.start(consume=False)

    execution_id = work.push({"n": 7})

    row = writer.get_execution(execution_id)
    assert row is not None and row.status == "pending"
    assert writer.drain(0)
    assert writer_calls == []
    new_threads = [t.name for t in set(threading.enumerate()) - before]
    assert not [n for n in new_threads if n.startswith("alepha-jobs-direct")]
    assert "alepha-jobs-pickup" not in new_threads


def test_a_started_runtime_picks_up_rows_another_runtime_wrote(
    make_jobs: MakeJobs,
) -> None:
    writer = make_jobs(pickup_delay=0.1)
    worker = make_jobs(pickup_delay=0.1)
    writer_calls: list[int] = []
    worker_calls: list[int] = []
    picked = threading.Event()
    work = _register(writer, writer_calls, threading.Event())
    _register(worker, worker_calls, picked)

    execution_id = work.push({"n": 7})
    worker.start()

    assert picked.wait(5)
    assert worker.drain(5)
    assert worker_calls == [7]
    assert writer_calls == []
    assert worker.get_execution(execution_id) is None


def test_a_backlog_another_runtime_wrote_drains_at_the_pools_speed(
    make_jobs: MakeJobs,
) -> None:
    """DESIGN §8.10: a poll takes as many rows as there are idle workers; when
    that filled the pool, the next poll follows as soon as a worker frees up,
    not a whole ``pickup_delay / 2`` later (which capped a pushing script's
    backlog at two rows per worker per second, and here at 2 per 5 minutes)."""
    writer = make_jobs()
    worker = make_jobs(
        pickup_delay=600, stale_threshold=86400, direct_max_concurrency=2
    )
    calls: list[int] = []
    work = _register(writer, [], threading.Event())
    _register(worker, calls, threading.Event())
    with freeze_time(datetime.now(timezone.utc) - timedelta(hours=1)):
        ids = [work.push({"n": n}) for n in range(30)]

    worker.start()

    assert wait_until(lambda: len(calls) == 30, timeout=30)
    assert sorted(calls) == list(range(30))
    assert worker.drain(5)
    assert all(worker.get_execution(i) is None for i in ids)


def _orders_runtime(
    make_jobs: MakeJobs,
) -> tuple[Jobs, Any, list[int], threading.Event]:
    """A started runtime whose database also holds the caller's ``orders`` table."""
    jobs = make_jobs(pickup_delay=0.1)
    calls: list[int] = []
    ran = threading.Event()
    work = _register(jobs, calls, ran)
    with connect(jobs) as raw:
        raw.execute("CREATE TABLE orders (id INTEGER)")
    jobs.start()
    return jobs, work, calls, ran


def test_a_push_on_the_callers_connection_runs_after_commit(
    make_jobs: MakeJobs,
) -> None:
    """DESIGN §8.7: the row and the caller's own rows commit together."""
    jobs, work, calls, ran = _orders_runtime(make_jobs)
    with caller_transaction(jobs) as transaction:
        transaction.execute("INSERT INTO orders VALUES (3)")
        execution_id = work.push({"n": 3}, connection=transaction.connection)
        assert jobs.get_execution(execution_id) is None  # not committed yet
        assert calls == []
        transaction.commit()

    assert ran.wait(5)
    assert jobs.drain(5)
    assert calls == [3]
    assert jobs.get_execution(execution_id) is None
    with connect(jobs) as raw:
        assert raw.execute("SELECT id FROM orders") == [(3,)]


def test_a_push_on_the_callers_connection_vanishes_on_rollback(
    make_jobs: MakeJobs,
) -> None:
    """DESIGN §8.7: after a rollback there is no row, no dispatch and no run."""
    jobs, work, calls, ran = _orders_runtime(make_jobs)
    with caller_transaction(jobs) as transaction:
        transaction.execute("INSERT INTO orders VALUES (1)")
        dropped = work.push({"n": 1}, connection=transaction.connection)
        transaction.rollback()
        # A committed push afterwards proves the pickup ran past the first one.
        kept = work.push({"n": 2}, connection=transaction.connection)
        transaction.commit()

    assert ran.wait(5)
    assert jobs.drain(5)
    assert jobs.get_execution(dropped) is None
    assert jobs.get_execution(kept) is None
    assert calls == [2]
    with connect(jobs) as raw:
        assert raw.execute("SELECT id FROM orders") == []


def test_a_keyed_push_on_the_callers_connection_returns_the_live_holder(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs()
    work = _register(jobs, [], threading.Event())
    holder = work.push({"n": 1}, key="k")
    with caller_transaction(jobs) as transaction:
        again = work.push({"n": 2}, key="k", connection=transaction.connection)
        transaction.commit()

    assert again == holder
    assert count_rows(jobs) == 1


def test_inline_cannot_join_the_callers_transaction(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    work = _register(jobs, [], threading.Event())
    with caller_transaction(jobs) as transaction:
        with pytest.raises(JobUsageError, match="inline=True"):
            work.push({"n": 1}, inline=True, connection=transaction.connection)
        transaction.commit()

    assert count_rows(jobs) == 0


def test_a_connection_of_the_other_driver_is_refused(
    make_jobs: MakeJobs, tmp_path: Any
) -> None:
    """DESIGN §8.7: the connection must be the outbox's own driver and database."""
    jobs = make_jobs()
    work = _register(jobs, [], threading.Event())
    if is_sqlite(jobs):
        other, wanted = admin_connection(), "sqlite3.Connection"
    else:
        other, wanted = sqlite3.connect(tmp_path / "other.db"), "psycopg.Connection"
    try:
        with pytest.raises(InvalidArgumentError, match=f"must be an open {wanted}"):
            work.push({"n": 1}, connection=other)
    finally:
        other.close()
    assert count_rows(jobs) == 0


def test_a_closed_connection_is_refused(make_jobs: MakeJobs, tmp_path: Any) -> None:
    jobs = make_jobs()
    work = _register(jobs, [], threading.Event())
    closed = (
        sqlite3.connect(tmp_path / "jobs.db") if is_sqlite(jobs) else admin_connection()
    )
    closed.close()

    with pytest.raises(InvalidArgumentError, match="got a closed one"):
        work.push({"n": 1}, connection=closed)
    assert count_rows(jobs) == 0


@pytest.mark.sqlite_only
def test_a_connection_to_another_database_is_refused(
    make_jobs: MakeJobs, tmp_path: Any
) -> None:
    jobs = make_jobs()
    work = _register(jobs, [], threading.Event())
    connection = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
    try:
        with pytest.raises(InvalidArgumentError, match="other.db"):
            work.push({"n": 1}, connection=connection)
    finally:
        connection.close()
    assert count_rows(jobs) == 0
