"""The paths issue 7 made faster keep their behaviour: SQLite group commit, the
``synchronous`` URL parameter, and the pickup draining a backlog without waiting
an interval between polls."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import JobContext, Retention, Rule, clock
from alepha_jobs.dispatch.pickup import Pickup
from alepha_jobs.errors import ConfigurationError
from alepha_jobs.store.base import NewExecution
from alepha_jobs.store.queries import SQL
from alepha_jobs.store.sqlite import SqliteStore, _flush, _Pending

from .conftest import MakeJobs, record_batch_claims, wait_until


class Work(BaseModel):
    n: int


def _row(n: int) -> NewExecution:
    return NewExecution(
        id=f"row-{n:04d}", job_name="work", payload={"n": n}, max_attempts=1
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = SqliteStore(f"sqlite:///{tmp_path}/jobs.db")
    yield store
    store.close()


def _status(store: SqliteStore, execution_id: str) -> str | None:
    row = store.get(execution_id)
    return None if row is None else row.status


# group commit


def test_threads_writing_at_once_each_get_their_own_outcome(
    store: SqliteStore,
) -> None:
    rows = [_row(n) for n in range(40)]
    store.insert(rows)
    start = threading.Barrier(8)
    claimed: dict[str, Any] = {}
    finished: dict[str, bool] = {}
    errors: list[BaseException] = []

    def worker(mine: list[NewExecution]) -> None:
        try:
            start.wait(10)
            for row in mine:
                claimed[row.id] = store.claim(row.id, clock.now())
                # a second claim of the same row loses: its guard no longer matches
                assert store.claim(row.id, clock.now()) is None
                finished[row.id] = store.succeed(row.id, clock.now(), [], keep=True)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(rows[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert {i: c.id for i, c in claimed.items()} == {r.id: r.id for r in rows}
    assert all(c.status == "running" and c.attempt == 1 for c in claimed.values())
    assert finished == {row.id: True for row in rows}
    assert {_status(store, row.id) for row in rows} == {"ok"}


def test_a_failing_statement_keeps_its_error_and_the_others_commit(
    store: SqliteStore,
) -> None:
    store.insert([_row(1)])
    now = clock.to_text(clock.now())
    good = _Pending(SQL["claim"], {"id": "row-0001", "now": now}, fetch=True)
    duplicate = dict(
        id="row-0001",
        now=now,
        job_name="work",
        key=None,
        status="pending",
        max_attempts=1,
        payload="{}",
        scheduled_at=None,
        triggered_by=None,
        triggered_by_name=None,
    )
    bad = _Pending(SQL["insert"], duplicate, fetch=False)

    _flush(store.connection(), [good, bad])

    assert good.done and bad.done
    assert good.error is None and good.result[0][0] == "row-0001"
    assert isinstance(bad.error, sqlite3.IntegrityError)
    assert _status(store, "row-0001") == "running"


def test_a_write_inside_a_transaction_rolls_back_with_it(store: SqliteStore) -> None:
    store.insert([_row(2)])

    with pytest.raises(RuntimeError), store.transaction():
        assert store.promote("row-0002", clock.now(), due_only=False) is False
        assert store.claim("row-0002", clock.now()) is not None
        raise RuntimeError("roll back")

    assert _status(store, "row-0002") == "pending"
    assert store.claim("row-0002", clock.now()) is not None


# synchronous


@pytest.mark.parametrize(
    ("suffix", "level"),
    [("", 1), ("?synchronous=normal", 1), ("?synchronous=FULL", 2)],
)
def test_the_url_chooses_the_synchronous_level(
    tmp_path: Path, suffix: str, level: int
) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/jobs.db{suffix}")
    try:
        pragma = store.connection().execute("PRAGMA synchronous").fetchone()[0]
        assert pragma == level
        assert store.path == tmp_path / "jobs.db"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("suffix", "named"),
    [("?synchronous=off", "synchronous='off'"), ("?journal=wal", "'journal'")],
)
def test_a_bad_sqlite_url_parameter_is_refused_before_anything_is_written(
    tmp_path: Path, suffix: str, named: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SqliteStore(f"sqlite:///{tmp_path}/jobs.db{suffix}")

    assert named in str(caught.value)
    assert "synchronous=normal" in str(caught.value)
    assert not (tmp_path / "jobs.db").exists()


# pickup


def test_the_pickup_drains_a_backlog_without_waiting_between_polls(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a poll filled every idle worker, the next poll follows as soon as a
    worker frees: with the interval made an hour after the first poll, the
    backlog still drains."""
    writer = make_jobs(pickup_delay=0.05)
    worker = make_jobs(pickup_delay=0.05, direct_max_concurrency=2)
    done: list[int] = []

    def register(jobs: Any) -> Any:
        @jobs.job("bench.work", schema=Work)
        def work(ctx: JobContext[Work]) -> None:
            """Record the payload."""
            done.append(ctx.payload.n)

        return work

    register(writer).push_many([{"n": n} for n in range(30)])
    register(worker)
    first_poll = threading.Event()
    run_once = Pickup.run_once

    def counted(self: Pickup) -> int:
        taken = run_once(self)
        if taken:
            first_poll.set()
        return taken

    monkeypatch.setattr(Pickup, "run_once", counted)
    monkeypatch.setattr(
        Pickup,
        "interval",
        property(lambda self: 3600.0 if first_poll.is_set() else 0.05),
    )
    worker.start()

    assert wait_until(lambda: len(done) == 30, 30)
    assert sorted(done) == list(range(30))
    assert worker.drain(10)


# direct-mode batches (opt-in)

KEEP = Retention(ok=Rule(last=1000), error=Rule(last=1000))


def _batched_jobs(make_jobs: MakeJobs, batch_size: int) -> Any:
    from alepha_jobs.dispatch.direct import DirectDispatcher

    return make_jobs(dispatcher=DirectDispatcher(2, batch_size=batch_size))


def test_a_backlog_of_a_quick_job_runs_in_batches_each_once(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _batched_jobs(make_jobs, 8)
    ran: list[int] = []
    events: list[tuple[str, str]] = []
    for name in ("job:begin", "job:success", "job:end"):
        jobs.on(name, lambda e, name=name: events.append((name, e.execution_id)))

    @jobs.job("bench.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        ran.append(ctx.payload.n)

    claims = record_batch_claims(monkeypatch, jobs)
    jobs.start()
    work.push_many([{"n": n} for n in range(5)])  # the runtime learns it is quick
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(5, 205)])
    assert jobs.drain(30)

    assert sorted(ran) == list(range(205))
    assert max(map(len, claims)) > 1  # some rows were claimed together
    assert {jobs.get_execution(i).status for i in ids} == {"ok"}
    for execution_id in ids:
        mine = [name for name, i in events if i == execution_id]
        assert mine == ["job:begin", "job:success", "job:end"]


def test_a_failure_inside_a_batch_is_recorded_and_the_others_succeed(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _batched_jobs(make_jobs, 8)
    errors: list[str] = []
    jobs.on("job:error", lambda event: errors.append(event.execution_id))

    @jobs.job("bench.work", schema=Work, retention=KEEP)
    def work(ctx: JobContext[Work]) -> None:
        """Fail on multiples of seven."""
        if ctx.payload.n % 7 == 0 and ctx.payload.n >= 100:
            raise ValueError(f"bad {ctx.payload.n}")

    claims = record_batch_claims(monkeypatch, jobs)
    jobs.start()
    work.push_many([{"n": n} for n in range(5)])
    assert jobs.drain(10)
    ids = work.push_many([{"n": n} for n in range(100, 200)])
    assert jobs.drain(30)

    assert max(map(len, claims)) > 1
    failing = {ids[n - 100] for n in range(100, 200) if n % 7 == 0}
    assert set(errors) == failing
    for n, execution_id in zip(range(100, 200), ids, strict=True):
        row = jobs.get_execution(execution_id)
        assert row is not None
        assert row.status == ("error" if n % 7 == 0 else "ok"), n
        if n % 7 == 0:
            assert row.error == f"bad {n}"


def test_slow_handlers_and_the_default_dispatcher_are_never_batched(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = _batched_jobs(make_jobs, 8)
    plain = make_jobs(direct_max_concurrency=2)
    gate = threading.Event()
    ran: list[int] = []

    for jobs in (batched, plain):

        @jobs.job("bench.work", schema=Work)
        def work(ctx: JobContext[Work]) -> None:
            """Wait on the gate (a slow handler), then record."""
            gate.wait(0.01)
            ran.append(ctx.payload.n)

        claims = record_batch_claims(monkeypatch, jobs)
        jobs.start()
        work.push_many([{"n": n} for n in range(40)])
        assert jobs.drain(30)
        assert claims == []  # every row went through the one-row claim
    assert sorted(ran) == sorted(list(range(40)) * 2)


def test_claim_batch_and_succeed_batch_follow_the_guards(make_jobs: MakeJobs) -> None:
    """The batch statements of every store: a row claimed once, successes kept
    or deleted as asked, a row no longer running left alone."""
    jobs = make_jobs()

    @jobs.job("bench.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Unused: rows are moved by hand."""

    ids = work.push_many([{"n": n} for n in range(4)])
    store = jobs.store
    claimed = store.claim_batch([*ids[:3], "no-such-row"], clock.now())
    assert sorted(row.id for row in claimed) == sorted(ids[:3])
    assert all(row.status == "running" and row.attempt == 1 for row in claimed)
    assert store.claim_batch(ids[:3], clock.now()) == []

    started = clock.now()
    answers = store.succeed_batch(
        [
            (ids[0], [{"message": "hi"}], True, started),
            (ids[1], [], False, started),
            (ids[3], [], True, started),
        ],
        clock.now(),
    )

    assert answers == [True, True, False]
    kept = store.get(ids[0])
    assert kept is not None and kept.status == "ok"
    assert kept.logs == [{"message": "hi"}]
    assert kept.started_at is not None
    assert store.get(ids[1]) is None
    assert _status(store, ids[2]) == "running"
    assert _status(store, ids[3]) == "pending"


def test_ready_interleaves_pending_and_due_rows_oldest_first(
    make_jobs: MakeJobs,
) -> None:
    """The pickup's select, now one index walk per status, still returns the
    oldest waiting rows of both kinds together, up to the limit."""
    from datetime import timedelta

    store = make_jobs().store
    now = clock.now()
    order = []
    for n, age in enumerate((50, 40, 30, 20, 10)):
        when = now - timedelta(seconds=age)
        if n % 2:
            row = NewExecution(
                id=f"due-{n}", job_name="work", payload={}, max_attempts=1,
                scheduled_at=when,
            )  # fmt: skip
            store.insert([row])
        else:
            store.insert([_row(n)])
            store.bump_redispatch(_row(n).id, when)
        order.append(f"due-{n}" if n % 2 else _row(n).id)
    store.insert([_row(9)])  # pending since now: younger than the cutoff
    other = NewExecution(id="other", job_name="other.job", payload={}, max_attempts=1)
    store.insert([other])
    store.bump_redispatch("other", now - timedelta(seconds=60))
    cutoff = now - timedelta(seconds=5)

    assert [r.id for r in store.ready(cutoff, ["work"], 3)] == order[:3]
    assert [r.id for r in store.ready(cutoff, ["work"], 10)] == order
    assert [r.id for r in store.ready(cutoff, ["other.job"], 10)] == ["other"]


def test_the_pickup_hands_no_row_over_twice_while_draining_a_backlog(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row taken from the FIFO, or finished, while the pickup's select ran may
    still look ``pending`` to it; the pool must not queue it again (each extra
    delivery costs a failed claim and a warning)."""
    writer = make_jobs(pickup_delay=0.05)
    worker = make_jobs(pickup_delay=0.05, direct_max_concurrency=2)
    done: list[int] = []

    for jobs in (writer, worker):

        @jobs.job("bench.work", schema=Work)
        def work(ctx: JobContext[Work]) -> None:
            """Record the payload."""
            done.append(ctx.payload.n)

        if jobs is writer:
            work.push_many([{"n": n} for n in range(300)])
    missed: list[str] = []
    claim = worker.store.claim

    def counted(execution_id: str, now: Any) -> Any:
        row = claim(execution_id, now)
        if row is None:
            missed.append(execution_id)
        return row

    monkeypatch.setattr(worker.store, "claim", counted)
    worker.start()

    assert wait_until(lambda: len(done) == 300, 60)
    assert worker.drain(10)
    assert sorted(done) == list(range(300))
    assert missed == []
