"""The Postgres outbox against a real server (issue 4): migrations, bad input,
the Postgres-only refusals of transactional push (DESIGN §8.7) and connection
loss. Each test works in a schema of its own, dropped afterwards; the tests skip
when the server is unreachable (fail with ALEPHA_JOBS_REQUIRE_SERVICES=1).
The guarded transitions of SPEC §3.4 are in test_postgres_store.py.
"""

from __future__ import annotations

import itertools
import logging
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
from alepha_jobs.store.postgres import PostgresStore
from alepha_jobs.store.postgres_queries import MIGRATIONS
from alepha_jobs.store.sqlite_schema import INDEXES

from . import postgres_store_support as pg
from .conftest import NEVER, wait_until
from .postgres_service import SERVER, admin_connection, fresh_schema, url_for
from .postgres_store_support import (
    JOB,
    PROCESSES,
    ROWS_PER_PROCESS,
    MakeJobs,
    Work,
    new_row,
    pending,
    register,
    status,
    terminate,
)
from .spawning import run_at_once

# the shared fixtures, registered by pytest under these names
admin, make_pg_jobs, schema, store, url = (
    pg.admin,
    pg.make_pg_jobs,
    pg.schema,
    pg.store,
    pg.url,
)


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
    exit_codes = run_at_once(open_and_push, url, PROCESSES)

    assert exit_codes == [0] * PROCESSES
    versions = admin.execute(
        "SELECT version FROM alepha_jobs_schema ORDER BY version"
    ).fetchall()
    assert versions == [(1,), (2,)]
    count = admin.execute("SELECT count(*) FROM job_executions").fetchone()
    assert count == (PROCESSES * ROWS_PER_PROCESS,)


def test_the_schema_has_both_tables_and_the_partial_indexes_of_version_2(
    store: PostgresStore, admin: Any, schema: str
) -> None:
    """Version 2 replaces SPEC §3.2's list by the partial indexes of
    sqlite_schema.INDEXES; the version 1 indexes are gone."""
    tables = admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (schema,),
    ).fetchall()
    indexes = dict(
        admin.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = %s AND tablename = 'job_executions'",
            (schema,),
        ).fetchall()
    )

    assert {name for (name,) in tables} == {
        "alepha_jobs_schema",
        "job_executions",
        "job_locks",
    }
    assert set(indexes) == {"job_executions_pkey"} | {i.name for i in INDEXES}
    assert "UNIQUE INDEX uq_je_job_key" in indexes["uq_je_job_key"]
    assert "(job_name, key) WHERE (key IS NOT NULL)" in indexes["uq_je_job_key"]
    assert "(updated_at) WHERE (status = 'pending'" in indexes["idx_je_pending"]
    assert "(scheduled_at) WHERE (status = 'scheduled'" in indexes["idx_je_scheduled"]
    assert "(job_name, created_at)" in indexes["idx_je_job_created"]


def test_reopening_a_current_schema_does_not_migrate_again(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = "alepha_jobs.store"
    with caplog.at_level(logging.INFO, logger=logger):
        PostgresStore(url).close()
        PostgresStore(url).close()

    migrated = [r for r in caplog.records if "migrated" in r.getMessage()]
    assert len(migrated) == 2  # versions 1 and 2, by the first store only


def test_a_schema_from_a_newer_version_is_refused(
    store: PostgresStore, url: str, admin: Any
) -> None:
    admin.execute("INSERT INTO alepha_jobs_schema (version) VALUES (99)")

    with pytest.raises(SchemaVersionError, match="version 99, newer than the 2"):
        PostgresStore(url)
    with pytest.raises(SchemaVersionError):
        Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))


# bad input


# version 1 -> 2 (partial indexes)

V1_AT = datetime(2020, 1, 1, tzinfo=timezone.utc)
V1_ROWS: list[tuple[str, str | None, datetime | None]] = [
    # status, key, completed_at
    ("pending", None, None),
    ("pending", "live-key", None),
    ("scheduled", None, None),
    ("running", None, None),
    ("ok", None, V1_AT),
    ("error", None, V1_AT),
    ("cancelled", None, V1_AT),
]


def version_1_schema(admin: Any, schema: str) -> list[tuple[Any, ...]]:
    """A schema as alepha_jobs with version 1 left it, a row in every status
    and a keyed one; return its rows."""
    prefix = f'"{schema}".'
    admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for ddl in MIGRATIONS[1]:
        admin.execute(ddl.format(schema=prefix))
    admin.execute("CREATE TABLE alepha_jobs_schema (version integer PRIMARY KEY)")
    admin.execute("INSERT INTO alepha_jobs_schema (version) VALUES (1)")
    with admin.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO job_executions (id, created_at, updated_at, job_name, key, "
            "status, scheduled_at, completed_at) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            [
                (str(uuid.uuid4()), V1_AT, V1_AT, JOB, key, st, V1_AT, done)
                for st, key, done in V1_ROWS
            ],
        )
    return all_rows(admin)


def all_rows(admin: Any) -> list[tuple[Any, ...]]:
    return list(admin.execute("SELECT * FROM job_executions ORDER BY id").fetchall())


def index_names(admin: Any, schema: str) -> set[str]:
    rows = admin.execute(
        "SELECT indexname FROM pg_indexes "
        "WHERE schemaname = %s AND tablename = 'job_executions'",
        (schema,),
    ).fetchall()
    return {name for (name,) in rows} - {"job_executions_pkey"}


def test_a_version_1_schema_with_rows_migrates_to_2_and_keeps_working(
    url: str, admin: Any, schema: str, make_pg_jobs: MakeJobs
) -> None:
    """The version 1 indexes give way to the partial ones; every row is intact
    and still found by the query that serves its status."""
    before = version_1_schema(admin, schema)

    jobs = make_pg_jobs()
    register(jobs, [])

    versions = admin.execute(
        "SELECT version FROM alepha_jobs_schema ORDER BY version"
    ).fetchall()
    assert versions == [(1,), (2,)]
    assert index_names(admin, schema) == {index.name for index in INDEXES}
    assert all_rows(admin) == before
    holder = admin.execute(
        "SELECT id FROM job_executions WHERE key = 'live-key'"
    ).fetchone()[0]
    assert jobs.push(JOB, {"n": 2}, key="live-key") == holder
    now = clock.now()
    store = jobs.store
    assert len(store.stale_pending(now, 10)) == 2
    assert len(store.due_scheduled(now, 10)) == 1
    assert len(store.running(now, 10)) == 1
    groups = {group.status: group.count for group in store.terminal_groups()}
    assert groups == {"ok": 1, "error": 1, "cancelled": 1}


@pytest.mark.slow
def test_processes_opening_one_version_1_schema_at_once_migrate_it_once(
    url: str, admin: Any, schema: str
) -> None:
    """The advisory lock holds for the 1 -> 2 step as for a fresh schema."""
    before = version_1_schema(admin, schema)

    exit_codes = run_at_once(open_and_push, url, PROCESSES)

    assert exit_codes == [0] * PROCESSES
    versions = admin.execute(
        "SELECT version FROM alepha_jobs_schema ORDER BY version"
    ).fetchall()
    assert versions == [(1,), (2,)]
    assert index_names(admin, schema) == {index.name for index in INDEXES}
    count = admin.execute("SELECT count(*) FROM job_executions").fetchone()
    assert count == (len(before) + PROCESSES * ROWS_PER_PROCESS,)


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


def test_only_a_connection_the_server_spoke_on_is_probed_before_lending(
    store: PostgresStore, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7: a quiet pooled connection costs no probe round trip; one whose
    backend was terminated meanwhile is probed, found dead and replaced."""
    import psycopg_pool

    probes: list[Any] = []
    probe = psycopg_pool.ConnectionPool.check_connection
    monkeypatch.setattr(
        psycopg_pool.ConnectionPool,
        "check_connection",
        staticmethod(lambda connection: (probes.append(connection), probe(connection))),
    )
    execution_id = pending(store)
    for _ in range(5):
        assert status(store, execution_id) == "pending"
    assert probes == []

    assert terminate(schema) >= 1
    assert status(store, execution_id) == "pending"
    assert len(probes) >= 1


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
    starts = itertools.count()
    lock = threading.Lock()

    @jobs.job(JOB, schema=Work, retention=Retention(ok=Rule(last=1000)))
    def work(ctx: JobContext[Work]) -> None:
        """Wait for the round of this start (by start order, not payload: a
        batch that gives rows back changes the order), then record the payload."""
        with lock:
            index = next(starts)
        assert rounds[min(index // per_round, len(rounds) - 1)].wait(30)
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
