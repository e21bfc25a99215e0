"""Schema version 2: every hot outbox query is served by an index, not a full scan
of ``job_executions``, on both stores and on a table that holds rows.

The partial indexes only serve a query whose WHERE repeats their predicate as a
literal, which a bound ``status = ?`` would not. SQLite shows its plan through
``EXPLAIN QUERY PLAN``. Postgres plans each statement as the generic plan of a
prepared statement (what psycopg's automatic preparation may end up running),
with sequential scans priced out, so a plan that still scans the table means no
index could serve the query at all.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from alepha_jobs import Jobs, JobsConfig
from alepha_jobs.store import postgres as pg_store
from alepha_jobs.store import sqlite as sqlite_store
from alepha_jobs.store.listing import build_query
from alepha_jobs.store.postgres_queries import statement
from alepha_jobs.store.queries import LIST_COLUMNS, SORTS, SQL, placeholders
from tests import outbox
from tests.conftest import NEVER
from tests.postgres_service import fresh_schema, url_for

UTC = timezone.utc
THEN = datetime(2030, 1, 1, tzinfo=UTC)
TERMINAL_ROWS = 3000
LIVE_ROWS = 30

PARAMS: dict[str, Any] = {
    "id": "x",
    "now": THEN,
    "cutoff": THEN,
    "limit": 100,
    "offset": 10,
    "job_name": "plans.big",
    "key": "k-1",
    "status": "ok",
    "spare": "",
    "live": False,
    "by": None,
    "by_name": None,
    "names": ["plans.big", "plans.small"],
}

# statement -> the indexes its plan must walk
HOT: dict[str, set[str]] = {
    "ready": {"idx_je_pending", "idx_je_scheduled"},
    "due_scheduled": {"idx_je_scheduled"},
    "stale_pending": {"idx_je_pending"},
    "running": {"idx_je_running"},
    "get_by_key": {"uq_je_job_key"},
    "cancel_by_key": {"uq_je_job_key"},
    "terminal_groups": {"idx_je_job_terminal"},
    "ids_beyond": {"idx_je_job_terminal"},
    "ids_completed_before": {"idx_je_job_terminal"},
    "newest_id": {"idx_je_job_terminal"},
    "live_counts": {"idx_je_pending", "idx_je_scheduled", "idx_je_running"},
}

# guarded transitions by id: the primary key, never a walk of a status index
BY_ID = ("claim", "claim_batch", "renew", "cancel", "delete_terminal", "delete_ids")
PRIMARY_KEY = {"sqlite": "sqlite_autoindex_job_executions_1", "postgres": "_pkey"}

# (status filter, sort) -> the indexes a listing of one job may walk
LISTINGS: dict[tuple[str | None, str], set[str]] = {
    (None, "-created_at"): {"idx_je_job_created"},
    (None, "created_at"): {"idx_je_job_created"},
    (None, "-started_at"): {"idx_je_job_created"},
    ("ok", "-created_at"): {"idx_je_job_created", "idx_je_job_terminal"},
    ("pending", "-created_at"): {"idx_je_pending", "idx_je_job_created"},
}


def fill(jobs: Jobs) -> None:
    """Mostly terminal history, a few live rows in each status, some keyed."""
    then = THEN - timedelta(days=1)
    rows = [
        (
            str(uuid.uuid4()),
            then,
            "plans.big" if n % 10 else "plans.small",
            None,
            ("ok", "error", "cancelled")[n % 3],
            then,
        )
        for n in range(TERMINAL_ROWS)
    ]
    rows += [
        (
            str(uuid.uuid4()),
            then,
            "plans.big",
            f"k-{n}" if n % 2 else None,
            ("pending", "scheduled", "running")[n % 3],
            None,
        )
        for n in range(LIVE_ROWS)
    ]
    with outbox.connect(jobs) as raw:
        raw.executemany(
            "INSERT INTO job_executions (id, created_at, updated_at, job_name, key, "
            "status, scheduled_at, started_at, completed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, t, t, job, key, st, t, t, done) for i, t, job, key, st, done in rows],
        )
        raw.execute("ANALYZE job_executions")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    """One SQLite outbox for the module; the tests only read plans."""
    url = f"sqlite:///{tmp_path_factory.mktemp('plans')}/jobs.db"
    made = Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))
    try:
        fill(made)
        yield made
    finally:
        made.close()


# SQLite


def sqlite_text(name: str) -> str:
    names = placeholders("n", 2)
    return SQL[name].format(names=names, ids=placeholders("i", 2))


def sqlite_params() -> dict[str, Any]:
    params = {k: v for k, v in PARAMS.items() if k != "names"}
    params.update(n0="plans.big", n1="plans.small", i0="a", i1="b")
    return {
        k: outbox.to_text(v) if isinstance(v, datetime) else v
        for k, v in params.items()
    }


def sqlite_plan(jobs: Jobs, sql: str, params: dict[str, Any]) -> list[str]:
    connection = sqlite3.connect(jobs.store.path)  # type: ignore[attr-defined]
    try:
        rows = connection.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


def assert_indexed(plan: list[str], expected: set[str]) -> None:
    """No bare scan of the table; every expected index walked."""
    text = "\n".join(plan)
    assert not re.search(r"^SCAN job_executions$", text, re.M), text
    assert "Seq Scan on job_executions" not in text, text
    for index in expected:
        assert index in text, f"{index} not used:\n{text}"


def assert_one_of(plan: list[str], allowed: set[str]) -> None:
    """No bare scan of the table; at least one of ``allowed`` walked."""
    assert_indexed(plan, set())
    text = "\n".join(plan)
    assert any(index in text for index in allowed), f"none of {allowed}:\n{text}"


@pytest.mark.parametrize("name", sorted(HOT))
def test_sqlite_hot_queries_walk_an_index(jobs: Jobs, name: str) -> None:
    plan = sqlite_plan(jobs, sqlite_text(name), sqlite_params())

    assert_indexed(plan, HOT[name])


@pytest.mark.parametrize("name", BY_ID)
def test_sqlite_transitions_by_id_stay_on_the_primary_key(
    jobs: Jobs, name: str
) -> None:
    sql = SQL[name].format(ids=placeholders("i", 500))
    params = {**sqlite_params(), **{f"i{n}": str(n) for n in range(500)}}
    plan = sqlite_plan(jobs, sql, params)

    assert plan == [f"SEARCH job_executions USING INDEX {PRIMARY_KEY['sqlite']} (id=?)"]


@pytest.mark.parametrize(("status", "sort"), sorted(LISTINGS, key=str))
def test_sqlite_listing_of_one_job_walks_an_index(
    jobs: Jobs, status: str | None, sort: str
) -> None:
    query = build_query("plans.big", status=status, sort=sort)
    where, params = sqlite_store._filters(query)
    page = f"SELECT {LIST_COLUMNS} FROM job_executions{where} ORDER BY {SORTS[sort]}"
    count = f"SELECT COUNT(*) FROM job_executions{where}"

    for sql in (page, count):
        assert_one_of(sqlite_plan(jobs, sql, params), LISTINGS[status, sort])


def test_sqlite_keyed_insert_resolves_its_conflict_on_the_partial_unique_index(
    jobs: Jobs,
) -> None:
    """The conflict target carries the index's WHERE; without it SQLite finds no
    unique index to match, so the WHERE is what ties the two together."""
    connection = sqlite3.connect(jobs.store.path)  # type: ignore[attr-defined]
    try:
        connection.execute("EXPLAIN " + SQL["insert_keyed"], _insert_params())
        bare = SQL["insert_keyed"].replace(" WHERE key IS NOT NULL", "")
        with pytest.raises(sqlite3.OperationalError, match="ON CONFLICT"):
            connection.execute("EXPLAIN " + bare, _insert_params())
    finally:
        connection.close()


def _insert_params() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "now": outbox.to_text(THEN),
        "job_name": "plans.big",
        "key": "k-1",
        "status": "pending",
        "max_attempts": 1,
        "payload": None,
        "scheduled_at": None,
        "triggered_by": None,
        "triggered_by_name": None,
    }


# Postgres


@pytest.fixture(scope="module")
def pg_jobs() -> Iterator[Jobs]:
    """One Postgres outbox, in a schema of its own, for the module."""
    with fresh_schema() as schema:
        config = JobsConfig(sweep_cron=NEVER, trim_cron=NEVER)
        made = Jobs(url_for(schema), config=config)
        try:
            fill(made)
            yield made
        finally:
            made.close()


_PYFORMAT = re.compile(r"%\((\w+)\)s")


@pytest.fixture
def generic_plan(pg_jobs: Jobs) -> Iterator[Any]:
    """``plan(sql, params)``: the generic plan of ``sql`` prepared on the outbox."""
    sql = pytest.importorskip("psycopg.sql")
    with pg_jobs.store.connection() as connection:  # type: ignore[attr-defined]

        def plan(text: str, params: dict[str, Any]) -> list[str]:
            order: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in order:
                    order.append(match.group(1))
                return f"${order.index(match.group(1)) + 1}"

            prepared = _PYFORMAT.sub(number, text).replace("%%", "%")
            values = sql.SQL(", ").join(sql.Literal(params[n]) for n in order)
            with connection.transaction():
                connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                connection.execute("SET LOCAL enable_seqscan = off")
                connection.execute(sql.SQL("PREPARE plan_me AS ") + sql.SQL(prepared))
                try:
                    execute = sql.SQL("EXPLAIN EXECUTE plan_me") + (
                        sql.SQL("({})").format(values) if order else sql.SQL("")
                    )
                    rows = connection.execute(execute).fetchall()
                finally:
                    connection.execute("DEALLOCATE plan_me")
            return [row[0] for row in rows]

        yield plan


@pytest.mark.parametrize("name", sorted(HOT))
def test_postgres_hot_queries_walk_an_index(generic_plan: Any, name: str) -> None:
    assert_indexed(generic_plan(statement(name), PARAMS), HOT[name])


@pytest.mark.parametrize("name", BY_ID)
def test_postgres_transitions_by_id_walk_an_index(generic_plan: Any, name: str) -> None:
    """The primary key, or, when few rows are live, the partial index of the
    guard's status: the planner weighs the two by cost; neither scans the table."""
    params = {**PARAMS, "ids": [str(n) for n in range(500)]}
    plan = generic_plan(statement(name), params)

    assert_one_of(plan, {PRIMARY_KEY["postgres"], "idx_je_"})


@pytest.mark.parametrize(("status", "sort"), sorted(LISTINGS, key=str))
def test_postgres_listing_of_one_job_walks_an_index(
    generic_plan: Any, status: str | None, sort: str
) -> None:
    query = build_query("plans.big", status=status, sort=sort)
    where, params = pg_store._filters(query)
    page = f"SELECT {LIST_COLUMNS} FROM job_executions{where} ORDER BY {SORTS[sort]}"
    count = f"SELECT COUNT(*) FROM job_executions{where}"

    for text in (page, count):
        assert_one_of(generic_plan(text, params), LISTINGS[status, sort])


def test_postgres_keyed_insert_resolves_its_conflict_on_the_partial_unique_index(
    generic_plan: Any,
) -> None:
    params = {**_insert_params(), "now": THEN}
    plan = generic_plan(statement("insert_keyed"), params)

    assert "Conflict Arbiter Indexes: uq_je_job_key" in "\n".join(plan)


def test_postgres_a_bound_status_alone_would_miss_the_partial_index(
    generic_plan: Any,
) -> None:
    """The reason the queries repeat their status as a literal."""
    bound = statement("newest_id").replace(
        "AND status IN ('ok', 'error', 'cancelled')", ""
    )
    plan = "\n".join(generic_plan(bound, PARAMS))

    assert "idx_je_job_terminal" not in plan
