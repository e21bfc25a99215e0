"""The Postgres outbox against a real server (issue 4): every guarded transition of
SPEC §3.4, migrations, bad input, transactional push (DESIGN §8.7) and connection
loss. Each test works in a schema of its own, dropped afterwards; the tests skip
when the server is unreachable (fail with ALEPHA_JOBS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    ConfigurationError,
    InvalidArgumentError,
    JobContext,
    Jobs,
    JobsConfig,
    PayloadError,
    Retention,
    Rule,
    SchemaVersionError,
    StoreError,
    clock,
)
from alepha_jobs.locks.postgres import PostgresLockStore
from alepha_jobs.store.base import ExecutionQuery, NewExecution, TerminalRun
from alepha_jobs.store.postgres import PostgresStore

from .conftest import NEVER, wait_until
from .postgres_service import SERVER, admin_connection, fresh_schema, url_for

JOB = "pg.work"
PROCESSES = 6
ROWS_PER_PROCESS = 20


class Work(BaseModel):
    n: int


# fixtures and helpers


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def url(schema: str) -> str:
    """The outbox URL; its connections carry the schema as application_name."""
    return url_for(schema, application_name=schema)


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(url)
    yield opened
    opened.close()


@pytest.fixture
def admin(schema: str) -> Iterator[Any]:
    """A connection of the test's own, outside the library, on the test schema."""
    connection = admin_connection()
    connection.execute(f'SET search_path TO "{schema}"')
    yield connection
    connection.close()


MakeJobs = Callable[..., Jobs]


@pytest.fixture
def make_pg_jobs(url: str) -> Iterator[MakeJobs]:
    created: list[Jobs] = []

    def factory(**config: Any) -> Jobs:
        config.setdefault("sweep_cron", NEVER)
        config.setdefault("trim_cron", NEVER)
        jobs = Jobs(url, config=JobsConfig(**config))
        created.append(jobs)
        return jobs

    yield factory
    for jobs in created:
        jobs.close()


def new_row(**fields: Any) -> NewExecution:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "job_name": JOB,
        "payload": {"n": 1},
        "max_attempts": 3,
    }
    values.update(fields)
    return NewExecution(**values)


def pending(store: PostgresStore, **fields: Any) -> str:
    row = new_row(**fields)
    store.insert([row])
    return row.id


def scheduled(store: PostgresStore, at: datetime, **fields: Any) -> str:
    return pending(store, scheduled_at=at, **fields)


def running(store: PostgresStore, **fields: Any) -> str:
    execution_id = pending(store, **fields)
    assert store.claim(execution_id, clock.now()) is not None
    return execution_id


def status(store: PostgresStore, execution_id: str) -> str | None:
    row = store.get(execution_id)
    return None if row is None else row.status


def terminate(application_name: str) -> int:
    """Terminate every backend of the library's pool and wait until they are gone."""
    connection = admin_connection()
    try:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name = %s",
            (application_name,),
        ).fetchone()
    finally:
        connection.close()
    return int(row[0])


def register(jobs: Jobs, calls: list[int], **options: Any) -> Any:
    lock = threading.Lock()

    @jobs.job(JOB, schema=Work, **options)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        with lock:
            calls.append(ctx.payload.n)

    return work


# T1-T3: inserts


def test_t1_inserts_pending_rows_and_unkeyed_rows_never_conflict(
    store: PostgresStore,
) -> None:
    """T1: a push writes ``pending``; NULL keys are distinct in the unique index."""
    rows = [new_row(), new_row()]
    store.insert(rows)

    assert [status(store, row.id) for row in rows] == ["pending", "pending"]
    first = store.get(rows[0].id)
    assert first is not None
    assert (first.attempt, first.max_attempts, first.redispatch_count) == (0, 3, 0)
    assert first.created_at == first.updated_at


def test_t1_a_second_keyed_insert_returns_the_live_holder(
    store: PostgresStore, admin: Any
) -> None:
    """T1 guard: unique (job_name, key); the loser learns the winner's id."""
    first, second = new_row(key="user-1"), new_row(key="user-1")

    assert store.insert_keyed(first) == (first.id, True)
    assert store.insert_keyed(second) == (first.id, False)
    assert admin.execute("SELECT count(*) FROM job_executions").fetchone() == (1,)


def test_t1_a_key_is_free_again_once_its_row_ended(store: PostgresStore) -> None:
    """SPEC §3.1: every terminal write clears the key."""
    first = new_row(key="user-1")
    store.insert_keyed(first)
    store.claim(first.id, clock.now())
    store.succeed(first.id, clock.now(), [], keep=True)
    again = new_row(key="user-1")

    assert store.insert_keyed(again) == (again.id, True)


def test_t2_an_insert_with_a_start_time_writes_a_scheduled_row(
    store: PostgresStore,
) -> None:
    at = clock.now() + timedelta(hours=1)
    execution_id = scheduled(store, at)

    row = store.get(execution_id)
    assert row is not None
    assert (row.status, row.scheduled_at) == ("scheduled", at)


@pytest.mark.parametrize(("outcome", "error"), [("ok", None), ("error", "boom")])
def test_t3_a_cron_inline_run_writes_one_complete_terminal_row(
    store: PostgresStore, outcome: Any, error: str | None
) -> None:
    started = clock.now() - timedelta(seconds=3)
    completed = clock.now()
    run = TerminalRun(
        id=str(uuid.uuid4()),
        job_name="pg.cron",
        status=outcome,
        started_at=started,
        completed_at=completed,
        error=error,
        logs=[{"level": "info", "message": "hi"}],
        triggered_by="system",
        triggered_by_name="system (cron)",
    )
    store.insert_terminal(run)

    row = store.get(run.id)
    assert row is not None
    assert (row.status, row.attempt, row.max_attempts) == (outcome, 1, 1)
    assert (row.started_at, row.completed_at, row.created_at) == (
        started,
        completed,
        completed,
    )
    assert (row.error, row.logs) == (error, [{"level": "info", "message": "hi"}])
    assert (row.triggered_by, row.triggered_by_name) == ("system", "system (cron)")


# T4-T5: claims


def test_t4_a_claim_moves_pending_to_running_once(store: PostgresStore) -> None:
    """T4: the second delivery of the same row loses the claim."""
    execution_id = pending(store)
    now = clock.now()

    claimed = store.claim(execution_id, now)

    assert claimed is not None
    assert (claimed.status, claimed.attempt, claimed.started_at) == ("running", 1, now)
    assert claimed.payload == {"n": 1}
    assert store.claim(execution_id, now) is None
    assert store.get(execution_id).attempt == 1  # type: ignore[union-attr]


def test_t4_eight_threads_claiming_one_row_have_one_winner(
    store: PostgresStore,
) -> None:
    execution_id = pending(store)
    barrier = threading.Barrier(8, timeout=10)
    results: list[bool] = []

    def contend() -> None:
        barrier.wait()
        results.append(store.claim(execution_id, clock.now()) is not None)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results) == [False] * 7 + [True]


def test_t5_a_scheduled_row_is_claimed_only_once_due(store: PostgresStore) -> None:
    at = clock.now() + timedelta(minutes=5)
    execution_id = scheduled(store, at)

    assert store.claim(execution_id, at - timedelta(milliseconds=1)) is None
    claimed = store.claim(execution_id, at)
    assert claimed is not None
    assert (claimed.status, claimed.attempt) == ("running", 1)


# T6-T9: promotion and lost deliveries


def test_t6_a_timer_promotion_waits_for_the_start_time(store: PostgresStore) -> None:
    at = clock.now() + timedelta(minutes=5)
    execution_id = scheduled(store, at)

    assert (
        store.promote(execution_id, at - timedelta(seconds=1), due_only=True) is False
    )
    assert status(store, execution_id) == "scheduled"
    assert store.promote(execution_id, at, due_only=True) is True
    row = store.get(execution_id)
    assert row is not None
    assert (row.status, row.updated_at, row.scheduled_at) == ("pending", at, at)


def test_t7_a_sweep_promotion_needs_only_the_scheduled_status(
    store: PostgresStore,
) -> None:
    """T7: the phase's select already checked the time; the guard is the status."""
    execution_id = scheduled(store, clock.now() + timedelta(hours=1))
    other = pending(store)

    assert store.promote(execution_id, clock.now(), due_only=False) is True
    assert status(store, execution_id) == "pending"
    assert store.promote(other, clock.now(), due_only=False) is False


def test_t8_a_redispatch_counts_only_pending_rows(store: PostgresStore) -> None:
    execution_id = pending(store)
    claimed = running(store)
    later = clock.now() + timedelta(minutes=1)

    assert store.bump_redispatch(execution_id, later) is True
    assert store.bump_redispatch(claimed, later) is False
    row = store.get(execution_id)
    assert row is not None
    assert (row.redispatch_count, row.updated_at) == (1, later)
    assert store.get(claimed).redispatch_count == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("keep", [True, False])
def test_t9_a_never_claimed_row_ends_in_error_or_is_deleted(
    store: PostgresStore, keep: bool
) -> None:
    """T9/T9': guarded on ``pending``; a running row is left alone."""
    execution_id = pending(store, key="k")
    claimed = running(store)
    message = "Never claimed after 3 sweep re-dispatch(es)"

    assert store.fail(execution_id, clock.now(), message, None, keep, "pending")
    assert not store.fail(claimed, clock.now(), message, None, keep, "pending")
    row = store.get(execution_id)
    if keep:
        assert row is not None
        assert (row.status, row.error, row.key, row.attempt) == (
            "error",
            message,
            None,
            0,
        )
        assert row.completed_at is not None
    else:
        assert row is None
    assert status(store, claimed) == "running"


# T10-T16: running rows


def test_t10_renew_restamps_running_rows_and_reports_the_others_gone(
    store: PostgresStore,
) -> None:
    alive = running(store)
    waiting = pending(store)
    later = clock.now() + timedelta(seconds=30)

    assert store.renew([alive, waiting, "missing"], later) == {alive}
    assert store.get(alive).updated_at == later  # type: ignore[union-attr]
    assert store.get(waiting).updated_at < later  # type: ignore[union-attr]
    assert store.renew([], later) == set()


@pytest.mark.parametrize("keep", [True, False])
def test_t11_a_success_records_ok_or_deletes_the_row(
    store: PostgresStore, keep: bool
) -> None:
    execution_id = running(store, key="k")
    logs = [{"level": "info", "message": "done"}]

    assert store.succeed(execution_id, clock.now(), logs, keep) is True
    assert store.succeed(execution_id, clock.now(), logs, keep) is False
    row = store.get(execution_id)
    if keep:
        assert row is not None
        assert (row.status, row.key, row.logs) == ("ok", None, logs)
        assert row.completed_at is not None
    else:
        assert row is None


def test_t12_a_retry_schedules_the_row_with_its_error_and_keeps_the_attempt(
    store: PostgresStore,
) -> None:
    execution_id = running(store)
    at = clock.now() + timedelta(seconds=10)
    logs = [{"level": "error", "message": "boom"}]

    assert store.retry_later(execution_id, clock.now(), "boom", at, logs) is True
    assert store.retry_later(execution_id, clock.now(), "boom", at, logs) is False
    row = store.get(execution_id)
    assert row is not None
    assert (row.status, row.error, row.scheduled_at, row.attempt, row.logs) == (
        "scheduled",
        "boom",
        at,
        1,
        logs,
    )


@pytest.mark.parametrize("keep", [True, False])
def test_t13_a_final_failure_records_error_or_deletes_the_row(
    store: PostgresStore, keep: bool
) -> None:
    """T13/T13' (and T14/T14', the inline path, which writes the same)."""
    execution_id = running(store, key="k")
    logs = [{"level": "error", "message": "boom"}]

    assert store.fail(execution_id, clock.now(), "boom", logs, keep) is True
    assert store.fail(execution_id, clock.now(), "boom", logs, keep) is False
    row = store.get(execution_id)
    if keep:
        assert row is not None
        assert (row.status, row.error, row.key, row.logs) == (
            "error",
            "boom",
            None,
            logs,
        )
    else:
        assert row is None


def test_t13_a_failure_without_logs_keeps_the_logs_already_stored(
    store: PostgresStore,
) -> None:
    """The recover-crashed path has no logs; COALESCE keeps an earlier run's."""
    execution_id = running(store)
    logs = [{"level": "info", "message": "first run"}]
    store.retry_later(execution_id, clock.now(), "boom", clock.now(), logs)
    store.claim(execution_id, clock.now())

    store.fail(execution_id, clock.now(), "crashed", None, keep=True)

    assert store.get(execution_id).logs == logs  # type: ignore[union-attr]


def test_t15_a_park_reschedules_with_the_new_payload_and_resets_counters(
    store: PostgresStore,
) -> None:
    execution_id = pending(store)
    store.bump_redispatch(execution_id, clock.now())
    store.claim(execution_id, clock.now())
    at = clock.now() + timedelta(minutes=1)

    assert store.park(execution_id, clock.now(), at, {"n": 2}) is True
    assert store.park(execution_id, clock.now(), at, {"n": 3}) is False
    row = store.get(execution_id)
    assert row is not None
    assert (row.status, row.scheduled_at, row.payload) == ("scheduled", at, {"n": 2})
    assert (row.attempt, row.redispatch_count) == (0, 0)


def test_t16_running_lists_rows_whose_lease_lapsed_oldest_first(
    store: PostgresStore,
) -> None:
    """T16 select: ``running`` rows not renewed since the cutoff, oldest first."""
    old, older = running(store), running(store)
    now = clock.now()
    store.renew([older], now - timedelta(minutes=10))
    store.renew([old], now - timedelta(minutes=5))
    fresh = running(store)

    due = store.running(now - timedelta(minutes=1), limit=10)

    assert [row.id for row in due] == [older, old]
    assert due[0].attempt == 1
    assert due[0].updated_at == now - timedelta(minutes=10)
    assert due[0].started_at is not None
    assert fresh not in [row.id for row in due]


# T17-T21: cancels and deletes


@pytest.mark.parametrize("start", ["pending", "scheduled", "running", "ok"])
def test_t17_cancel_applies_to_live_rows_only(store: PostgresStore, start: str) -> None:
    if start == "scheduled":
        execution_id = scheduled(store, clock.now() + timedelta(hours=1))
    elif start == "pending":
        execution_id = pending(store, key="k")
    else:
        execution_id = running(store)
    if start == "ok":
        store.succeed(execution_id, clock.now(), [], keep=True)

    cancelled = store.cancel(execution_id, clock.now(), "u1", "Ann")

    assert cancelled is (start != "ok")
    row = store.get(execution_id)
    assert row is not None
    if cancelled:
        assert (row.status, row.key, row.cancelled_by, row.cancelled_by_name) == (
            "cancelled",
            None,
            "u1",
            "Ann",
        )
        assert row.completed_at is not None
    else:
        assert row.status == "ok"


@pytest.mark.parametrize(
    "transition",
    [
        lambda s, i: s.succeed(i, clock.now(), [], True),
        lambda s, i: s.succeed(i, clock.now(), [], False),
        lambda s, i: s.fail(i, clock.now(), "boom", None, True),
        lambda s, i: s.fail(i, clock.now(), "boom", None, False),
        lambda s, i: s.retry_later(i, clock.now(), "boom", clock.now(), None),
        lambda s, i: s.park(i, clock.now(), clock.now(), {"n": 2}),
        lambda s, i: s.promote(i, clock.now(), False),
        lambda s, i: s.claim(i, clock.now()),
    ],
    ids=[
        "success",
        "success-unrecorded",
        "failure",
        "failure-unrecorded",
        "retry",
        "park",
        "promote",
        "claim",
    ],
)
def test_t17_a_cancel_beats_every_racing_write(
    store: PostgresStore, transition: Callable[[PostgresStore, str], Any]
) -> None:
    """SPEC §3.4: every other write is guarded on the status it expects."""
    execution_id = running(store)
    store.cancel(execution_id, clock.now(), None, None)

    assert not transition(store, execution_id)
    assert status(store, execution_id) == "cancelled"


def test_t18_cancel_by_key_takes_a_pending_or_scheduled_row_never_a_running_one(
    store: PostgresStore,
) -> None:
    waiting = pending(store, key="a")
    later = scheduled(store, clock.now() + timedelta(hours=1), key="b")
    busy = running(store, key="c")

    assert store.cancel_by_key(JOB, "a", clock.now(), "u1", "Ann") == waiting
    assert store.cancel_by_key(JOB, "b", clock.now(), None, None) == later
    assert store.cancel_by_key(JOB, "c", clock.now(), None, None) is None
    assert store.cancel_by_key("other.job", "a", clock.now(), None, None) is None
    assert [status(store, i) for i in (waiting, later, busy)] == [
        "cancelled",
        "cancelled",
        "running",
    ]


def test_t19_delete_cancelled_deletes_only_a_cancelled_row(
    store: PostgresStore,
) -> None:
    cancelled, live = pending(store), pending(store)
    store.cancel(cancelled, clock.now(), None, None)

    assert store.delete_cancelled(cancelled) is True
    assert store.delete_cancelled(live) is False
    assert (store.get(cancelled), status(store, live)) == (None, "pending")


def test_t20_delete_terminal_spares_live_rows(store: PostgresStore) -> None:
    done, live = running(store), running(store)
    store.succeed(done, clock.now(), [], keep=True)

    assert store.delete_terminal([done, live, done, "missing"]) == 1
    assert (store.get(done), status(store, live)) == (None, "running")
    assert store.delete_terminal([]) == 0


@pytest.mark.parametrize("live", [False, True])
def test_t21_rows_of_unregistered_jobs_are_listed_terminal_only_unless_live(
    store: PostgresStore, live: bool
) -> None:
    """T21 with DESIGN §8.2: live orphans go only on purpose."""
    orphan_live = pending(store, job_name="gone.job")
    orphan_done = running(store, job_name="gone.job")
    store.succeed(orphan_done, clock.now(), [], keep=True)
    pending(store)

    ids = store.unregistered_ids([JOB], limit=10, live=live)

    expected = {orphan_done, orphan_live} if live else {orphan_done}
    assert set(ids) == expected
    assert store.delete_ids(ids) == len(expected)
    assert store.live_counts() == ({JOB: 1} if live else {JOB: 1, "gone.job": 1})


# sweep, pickup, trim and admin selects


def test_sweep_selects_return_due_rows_oldest_first(store: PostgresStore) -> None:
    now = clock.now()
    late = scheduled(store, now - timedelta(minutes=1))
    later = scheduled(store, now - timedelta(minutes=2))
    scheduled(store, now + timedelta(minutes=1))
    stale, staler, fresh = pending(store), pending(store), pending(store)
    store.bump_redispatch(stale, now - timedelta(minutes=5))
    store.bump_redispatch(staler, now - timedelta(minutes=6))
    store.bump_redispatch(fresh, now)

    assert [r.id for r in store.due_scheduled(now, 10)] == [later, late]
    assert [r.id for r in store.due_scheduled(now, 1)] == [later]
    stale_rows = store.stale_pending(now - timedelta(minutes=1), 10)
    assert [(r.id, r.redispatch_count) for r in stale_rows] == [
        (staler, 1),
        (stale, 1),
    ]


def test_ready_returns_waiting_rows_of_the_named_jobs_only(
    store: PostgresStore,
) -> None:
    """DESIGN §8.10 pickup: pending untouched, or scheduled and due, since cutoff."""
    now = clock.now()
    old = pending(store)
    store.bump_redispatch(old, now - timedelta(seconds=5))
    due = scheduled(store, now - timedelta(seconds=3))
    scheduled(store, now + timedelta(seconds=3))
    other = pending(store, job_name="other.job")
    store.bump_redispatch(other, now - timedelta(seconds=5))

    rows = store.ready(now - timedelta(seconds=1), [JOB], 10)

    assert [row.id for row in rows] == [old, due]
    assert [row.id for row in store.ready(now, [JOB], 1)] == [old]


def test_sweep_selects_skip_rows_another_transaction_holds(
    store: PostgresStore, admin: Any
) -> None:
    """FOR UPDATE SKIP LOCKED: a row being moved elsewhere is skipped, not waited
    for, and the next tick sees it again."""
    now = clock.now()
    held, free = pending(store), pending(store)
    for execution_id in (held, free):
        store.bump_redispatch(execution_id, now - timedelta(minutes=5))
    cutoff = now - timedelta(minutes=1)

    with admin.transaction():
        admin.execute("SELECT 1 FROM job_executions WHERE id = %s FOR UPDATE", (held,))
        during = [row.id for row in store.stale_pending(cutoff, 10)]
        ready = [row.id for row in store.ready(cutoff, [JOB], 10)]

    assert during == [free]
    assert ready == [free]
    assert {row.id for row in store.stale_pending(cutoff, 10)} == {held, free}


def test_trim_selects_group_rank_and_age_terminal_rows(store: PostgresStore) -> None:
    now = clock.now()
    ids = [running(store) for _ in range(3)]
    for offset, execution_id in enumerate(ids):
        store.succeed(execution_id, now - timedelta(days=3 - offset), [], keep=True)
    failed = running(store)
    store.fail(failed, now, "boom", None, keep=True)

    groups = {(g.job_name, g.status): g for g in store.terminal_groups()}
    assert set(groups) == {(JOB, "ok"), (JOB, "error")}
    assert groups[(JOB, "ok")].count == 3
    assert groups[(JOB, "ok")].oldest == now - timedelta(days=3)
    assert groups[(JOB, "ok")].newest == now - timedelta(days=1)
    assert store.newest_id(JOB, "ok") == ids[2]
    assert store.ids_beyond(JOB, "ok", offset=1, limit=10) == [ids[1], ids[0]]
    before = store.ids_completed_before(
        JOB, "ok", now - timedelta(days=1, hours=12), spare=ids[0], limit=10
    )
    assert before == [ids[1]] or set(before) == {ids[1]}
    assert store.newest_id(JOB, "cancelled") is None


def test_listing_filters_sorts_and_pages(store: PostgresStore) -> None:
    """SPEC §10.4: the same query shape as on SQLite (``strpos`` for the key)."""
    now = clock.now()
    by_admin = pending(store, key="order-17", triggered_by="u1")
    by_cron = running(store, triggered_by="system", key="order-2")
    from_code = running(store)
    store.succeed(from_code, now, [], keep=True)

    def ids(**fields: Any) -> list[str]:
        rows, _ = store.list(ExecutionQuery(job_name=JOB, **fields))
        return [row.id for row in rows]

    assert ids(key="der-1") == [by_admin]
    assert ids(trigger="manual") == [by_admin]
    assert ids(trigger="scheduled") == [by_cron]
    assert ids(trigger="code") == [from_code]
    assert set(ids(statuses=("pending", "ok"))) == {by_admin, from_code}
    assert ids(sort="status") == [from_code, by_admin, by_cron]
    assert ids(started_from=now - timedelta(minutes=1), sort="-created_at") == [
        from_code,
        by_cron,
    ]
    rows, total = store.list(ExecutionQuery(job_name=JOB, size=2, page=1))
    assert (len(rows), total) == (1, 3)
    assert rows[0].payload is None and rows[0].logs is None  # not loaded


# values


def test_a_json_payload_round_trips_nested_and_unicode(store: PostgresStore) -> None:
    payload = {
        "text": 'Zoë → 東京 🚀 "quoted" \\ back',
        "nested": {"list": [1, 2.5, None, True, {"deep": ["é"]}], "empty": {}},
        "big": 2**53 + 1,
        "negative": -0.001,
    }
    execution_id = pending(store, payload=payload)

    assert store.get(execution_id).payload == payload  # type: ignore[union-attr]
    claimed = store.claim(execution_id, clock.now())
    assert claimed is not None and claimed.payload == payload


def test_timestamps_are_aware_utc_and_kept_to_the_millisecond(
    store: PostgresStore,
) -> None:
    """As on SQLite: aware UTC datetimes, millisecond precision."""
    paris = timezone(timedelta(hours=2))
    at = datetime(2026, 7, 1, 14, 30, 15, 123456, tzinfo=paris)
    execution_id = scheduled(store, at)
    store.claim(execution_id, at)
    store.succeed(execution_id, at + timedelta(seconds=1), [], keep=True)

    row = store.get(execution_id)
    assert row is not None
    moments = [
        row.created_at,
        row.updated_at,
        row.scheduled_at,
        row.started_at,
        row.completed_at,
    ]
    assert all(m is not None and m.tzinfo is timezone.utc for m in moments)
    assert row.scheduled_at == datetime(2026, 7, 1, 12, 30, 15, 123000, timezone.utc)


def test_nul_in_an_error_or_logs_is_stored_as_a_replacement_character(
    store: PostgresStore,
) -> None:
    """Postgres text refuses U+0000; a failure record must never be lost to it."""
    execution_id = running(store)
    logs = [{"level": "error", "message": "bad\x00byte", "k\x00": "v"}]

    assert store.fail(execution_id, clock.now(), "err\x00or", logs, keep=True)

    row = store.get(execution_id)
    assert row is not None
    assert row.error == "err\ufffdor"
    assert row.logs == [{"level": "error", "message": "bad\ufffdbyte", "k\ufffd": "v"}]


# migrations


def open_and_push(url: str, barrier: Barrier, worker: int) -> None:
    """One spawned process: wait for the others, open the fresh schema, push."""
    barrier.wait(60)
    jobs = Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))
    try:
        register(jobs, [])
        for n in range(ROWS_PER_PROCESS):
            jobs.push(JOB, {"n": worker * 1000 + n})
    finally:
        jobs.close()


@pytest.mark.slow
def test_six_processes_opening_one_fresh_schema_at_once_all_succeed(
    url: str, admin: Any
) -> None:
    """Issue 4: migrations run once under the advisory lock; every push lands."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(PROCESSES)
    workers = [
        spawn.Process(target=open_and_push, args=(url, barrier, worker))
        for worker in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)

    assert [p.exitcode for p in workers] == [0] * PROCESSES
    versions = admin.execute("SELECT version FROM alepha_jobs_schema").fetchall()
    assert versions == [(1,)]
    count = admin.execute("SELECT count(*) FROM job_executions").fetchone()
    assert count == (PROCESSES * ROWS_PER_PROCESS,)


def test_the_schema_has_both_tables_and_the_indexes_of_spec_3_2(
    store: PostgresStore, admin: Any, schema: str
) -> None:
    tables = admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (schema,),
    ).fetchall()
    indexes = dict(
        admin.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s",
            (schema,),
        ).fetchall()
    )

    assert {name for (name,) in tables} == {
        "alepha_jobs_schema",
        "job_executions",
        "job_locks",
    }
    assert "UNIQUE INDEX uq_je_job_key" in indexes["uq_je_job_key"]
    assert "(job_name, key)" in indexes["uq_je_job_key"]
    assert "(status, scheduled_at)" in indexes["idx_je_status_scheduled"]
    assert "(status, updated_at)" in indexes["idx_je_status_updated"]


def test_reopening_a_current_schema_does_not_migrate_again(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = "alepha_jobs.store"
    with caplog.at_level(logging.INFO, logger=logger):
        PostgresStore(url).close()
        PostgresStore(url).close()

    migrated = [r for r in caplog.records if "migrated" in r.getMessage()]
    assert len(migrated) == 1


def test_a_schema_from_a_newer_version_is_refused(
    store: PostgresStore, url: str, admin: Any
) -> None:
    admin.execute("INSERT INTO alepha_jobs_schema (version) VALUES (99)")

    with pytest.raises(SchemaVersionError, match="version 99, newer than the 1"):
        PostgresStore(url)
    with pytest.raises(SchemaVersionError):
        Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))


# bad input


def test_an_unreachable_server_is_a_store_error_naming_host_port_and_reason() -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"

    with pytest.raises(StoreError) as caught:
        PostgresStore(url)
    with pytest.raises(StoreError) as through_jobs:
        Jobs(url)

    for error in (caught.value, through_jobs.value):
        assert type(error) is StoreError
        message = str(error)
        assert message.startswith("Postgres at 127.0.0.1:1/test: Connection refused")
        assert "accepting TCP/IP connections" in message
        assert "\n" not in message


def test_an_unknown_host_is_a_store_error_that_says_to_check_the_host() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://postgres@alepha-no-such-host.invalid:5432/test")

    message = str(caught.value)
    assert "alepha-no-such-host.invalid:5432/test" in message
    assert "check the host name in the URL" in message
    assert "restarted" not in message


def test_wrong_credentials_are_a_store_error_naming_the_user() -> None:
    admin_connection().close()  # skip when the server itself is absent
    url = "postgresql://alepha_nobody@127.0.0.1:5432/test"

    with pytest.raises(StoreError) as caught:
        PostgresStore(url)

    assert type(caught.value) is StoreError
    assert "127.0.0.1:5432" in str(caught.value)
    assert 'role "alepha_nobody" does not exist' in str(caught.value)
    assert "check the user name and password" in str(caught.value)


def test_a_missing_database_is_a_store_error_naming_it() -> None:
    admin_connection().close()
    with pytest.raises(StoreError, match='database "alepha_no_such_db" does not'):
        PostgresStore("postgresql://postgres@127.0.0.1:5432/alepha_no_such_db")


def test_without_psycopg_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(
        ConfigurationError, match=r"pip install 'alepha-jobs\[postgres\]'"
    ):
        Jobs("postgresql://postgres@127.0.0.1/test")


def test_without_psycopg_a_sqlite_outbox_works_as_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The extra is optional: nothing on the SQLite path imports psycopg."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    jobs = Jobs(
        f"sqlite:///{tmp_path}/jobs.db",
        config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER),
    )
    calls: list[int] = []
    work = register(jobs, calls)
    try:
        jobs.start()
        work.push({"n": 1})
        assert jobs.drain(5)
    finally:
        jobs.close()

    assert calls == [1]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@h:5/db?schema=s", "postgresql://u:***@h:5/db?schema=s"),
        ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgres://h/db", "postgres://h/db"),
    ],
)
def test_the_url_a_store_shows_never_carries_the_password(url: str, shown: str) -> None:
    from alepha_jobs.store.postgres import masked

    assert masked(url) == shown


@pytest.mark.parametrize("size", ["0", "many"])
def test_a_bad_pool_size_is_a_configuration_error(size: str) -> None:
    with pytest.raises(ConfigurationError, match="pool_max_size"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:1/test?pool_max_size={size}")


@pytest.mark.parametrize("seconds", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_pool_timeout_is_a_configuration_error(seconds: str) -> None:
    with pytest.raises(ConfigurationError, match="pool_timeout='.*' in .* positive"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:1/test?pool_timeout={seconds}")


@pytest.fixture(params=["sqlite", "postgres"])
def any_jobs(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[tuple[Jobs, Callable[[], int]]]:
    """A runtime on each store, with a count of its rows."""
    config = JobsConfig(sweep_cron=NEVER, trim_cron=NEVER)
    if request.param == "sqlite":
        jobs = Jobs(f"sqlite:///{tmp_path}/jobs.db", config=config)

        def count() -> int:
            with sqlite3.connect(tmp_path / "jobs.db") as connection:
                rows = connection.execute("SELECT count(*) FROM job_executions")
                return int(rows.fetchone()[0])

        yield jobs, count
        jobs.close()
        return
    with fresh_schema() as schema:
        jobs = Jobs(url_for(schema), config=config)
        admin = admin_connection()

        def count() -> int:
            sql = f'SELECT count(*) FROM "{schema}".job_executions'
            return int(admin.execute(sql).fetchone()[0])

        yield jobs, count
        admin.close()
        jobs.close()


@pytest.mark.parametrize(
    "payload",
    [{"n": 1, "note": "a\x00b"}, {"n": 1, "extra": {"k\x00": 1}}],
    ids=["value", "key"],
)
def test_nul_in_a_payload_is_refused_alike_on_both_stores(
    any_jobs: tuple[Jobs, Callable[[], int]], payload: dict[str, Any]
) -> None:
    """Issue 4: Postgres cannot store U+0000; both stores refuse it the same way."""

    class Loose(BaseModel, extra="allow"):
        n: int

    jobs, count = any_jobs

    @jobs.job(JOB, schema=Loose)
    def work(ctx: JobContext[Loose]) -> None:
        """Nothing."""

    with pytest.raises(PayloadError, match=r"contains a NUL character \(U\+0000\)"):
        work.push(payload)
    assert count() == 0


def test_nul_in_a_key_is_refused_alike_on_both_stores(
    any_jobs: tuple[Jobs, Callable[[], int]],
) -> None:
    jobs, count = any_jobs
    work = register(jobs, [])

    with pytest.raises(InvalidArgumentError, match="NUL"):
        work.push({"n": 1}, key="a\x00b")
    assert count() == 0


# transactional push (DESIGN §8.7): commit, rollback and keys are contract
# tests in test_push.py; these are the Postgres-only refusals


def test_a_connection_to_another_database_or_driver_is_refused(
    make_pg_jobs: MakeJobs, tmp_path: Any
) -> None:
    import psycopg

    jobs = make_pg_jobs()
    work = register(jobs, [])
    elsewhere = psycopg.connect(SERVER.rsplit("/", 1)[0] + "/postgres")
    lite = sqlite3.connect(tmp_path / "other.db")
    try:
        with pytest.raises(InvalidArgumentError, match="'postgres'"):
            work.push({"n": 1}, connection=elsewhere)
        with pytest.raises(InvalidArgumentError, match="psycopg.Connection"):
            work.push({"n": 1}, connection=lite)
    finally:
        elsewhere.close()
        lite.close()
    assert jobs.executions(JOB).total_elements == 0


# connection loss


def test_a_statement_whose_connection_dies_runs_again_on_a_fresh_one(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[bool] = []

    def work(connection: Any, retried: bool) -> int:
        attempts.append(retried)
        if not retried:
            connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(connection.execute("SELECT 42").fetchone()[0])

    with caplog.at_level(logging.WARNING, logger="alepha_jobs.store"):
        assert store.run(work) == 42

    assert attempts == [False, True]
    assert any(getattr(r, "event", None) == "store.reconnect" for r in caplog.records)


def test_an_error_that_is_not_a_lost_connection_is_not_retried(
    store: PostgresStore,
) -> None:
    row = new_row()
    store.insert([row])

    with pytest.raises(StoreError, match="UniqueViolation"):
        store.insert([row])
    assert store.get(row.id) is not None


def lose_first_answer(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the first attempt of each call commit, then kill its connection before
    the answer comes back: the case a retry cannot see."""
    original = store.run

    def run(work: Callable[[Any, bool], Any]) -> Any:
        def committed_then_lost(connection: Any, retried: bool) -> Any:
            result = work(connection, retried)
            if not retried:
                connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return result

        return original(committed_then_lost)

    monkeypatch.setattr(store, "run", run)


def test_an_insert_whose_commit_went_unseen_is_not_written_twice(
    store: PostgresStore, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose_first_answer(store, monkeypatch)
    rows = [new_row(), new_row()]
    keyed = new_row(key="k")

    store.insert(rows)
    assert store.insert_keyed(keyed) == (keyed.id, False)

    count = admin.execute("SELECT count(*) FROM job_executions").fetchone()
    assert count == (3,)


def test_a_claim_whose_answer_was_lost_leaves_the_row_to_the_sweep(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented limit of the retry: the guard no longer matches, so the
    caller sees no claim; the row is ``running`` for recover-crashed (§5.2)."""
    execution_id = pending(store)
    lose_first_answer(store, monkeypatch)

    assert store.claim(execution_id, clock.now()) is None
    monkeypatch.undo()
    assert status(store, execution_id) == "running"
    lapsed = store.running(clock.now() + timedelta(minutes=1), 10)
    assert [row.id for row in lapsed] == [execution_id]


def test_connections_killed_while_idle_are_replaced(
    store: PostgresStore, schema: str
) -> None:
    execution_id = pending(store)
    store.get(execution_id)

    assert terminate(schema) >= 1
    assert status(store, execution_id) == "pending"
    assert store.claim(execution_id, clock.now()) is not None


def test_jobs_survive_their_backends_being_killed_while_they_run(
    make_pg_jobs: MakeJobs, schema: str, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 4: kill the library's backends four times during a run of 60 jobs;
    each job runs exactly once, no row is lost, no thread raises."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: escaped.append(a.exc_value))
    rounds = [threading.Event() for _ in range(4)]
    per_round = 15
    jobs = make_pg_jobs(pickup_delay=0.1, direct_max_concurrency=4)
    calls: list[int] = []
    lock = threading.Lock()

    @jobs.job(JOB, schema=Work, retention=Retention(ok=Rule(last=1000)))
    def work(ctx: JobContext[Work]) -> None:
        """Wait for this job's round, then record the payload."""
        assert rounds[ctx.payload.n // per_round].wait(30)
        with lock:
            calls.append(ctx.payload.n)

    jobs.start()
    work.push_many([{"n": n} for n in range(4 * per_round)])
    killed = []
    for index, gate in enumerate(rounds):
        gate.set()
        killed.append(terminate(schema))
        assert wait_until(lambda i=index: len(calls) >= (i + 1) * per_round, 30)
    assert jobs.drain(30)

    assert sorted(calls) == list(range(4 * per_round))
    assert all(count >= 1 for count in killed)
    rows = admin.execute(
        "SELECT status, attempt, count(*) FROM job_executions GROUP BY 1, 2"
    ).fetchall()
    assert rows == [("ok", 1, 4 * per_round)]
    assert escaped == []


# end to end


def test_two_hundred_pushed_jobs_run_once_and_leave_no_rows(
    make_pg_jobs: MakeJobs, admin: Any
) -> None:
    """Issue 4 smoke test: ``Jobs("postgresql://...")`` with a queue job."""
    jobs = make_pg_jobs()
    calls: list[int] = []
    work = register(jobs, calls)
    jobs.start()

    for n in range(100):
        work.push({"n": n})
    work.push_many([{"n": n} for n in range(100, 200)])

    assert jobs.drain(60)
    assert sorted(calls) == list(range(200))
    assert admin.execute("SELECT count(*) FROM job_executions").fetchone() == (0,)


def test_a_cron_instant_runs_once_across_two_runtimes_on_one_schema(
    make_pg_jobs: MakeJobs,
) -> None:
    """SPEC §6.2: the default lock store is the Postgres one, shared by both."""
    runs: list[str] = []
    runtimes = [make_pg_jobs(), make_pg_jobs()]
    for index, jobs in enumerate(runtimes):

        @jobs.job("pg.cron", cron="0 3 * * *")
        def nightly(ctx: JobContext[None], index: int = index) -> None:
            """Record which runtime ran."""
            runs.append(f"runtime-{index}")

    instant = datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
    ran = [
        jobs.cron.tick(jobs.definition("pg.cron"), instant)  # type: ignore[arg-type]
        for jobs in runtimes
    ]

    assert all(isinstance(jobs.locks, PostgresLockStore) for jobs in runtimes)
    assert sorted(ran) == [False, True]
    assert len(runs) == 1
