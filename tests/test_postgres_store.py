"""The Postgres outbox against a real server (issue 4): every guarded transition of
SPEC §3.4, the sweep, pickup, trim and admin selects, stored values and runtimes
end to end. Each test works in a schema of its own, dropped afterwards; the tests
skip when the server is unreachable (fail with ALEPHA_JOBS_REQUIRE_SERVICES=1).
Migrations, bad input and connection loss are in test_postgres_connection.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from alepha_jobs import (
    JobContext,
    clock,
)
from alepha_jobs.locks.postgres import PostgresLockStore
from alepha_jobs.store.base import ExecutionQuery, TerminalRun
from alepha_jobs.store.postgres import PostgresStore

from . import postgres_store_support as pg
from .postgres_store_support import (
    JOB,
    MakeJobs,
    new_row,
    pending,
    register,
    running,
    scheduled,
    status,
)

# the shared fixtures, registered by pytest under these names
admin, make_pg_jobs, schema, store, url = (
    pg.admin,
    pg.make_pg_jobs,
    pg.schema,
    pg.store,
    pg.url,
)


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
