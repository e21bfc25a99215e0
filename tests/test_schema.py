"""Versioned schema creation and migration (DESIGN §5, §9 sqlite-utils), safe when
several processes start at once; keyed pushes under concurrency (SPEC §2.1.1 step 7,
Appendix B.4)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from pydantic import BaseModel

from alepha_jobs import JobContext, Jobs, JobsConfig, SchemaVersionError, clock
from alepha_jobs.store import sqlite_schema
from alepha_jobs.store.sqlite_schema import INDEXES

from .conftest import NEVER, MakeJobs
from .spawning import run_at_once

PROCESSES = 6
ROWS_PER_PROCESS = 50

# The Postgres schema has its own tests in test_postgres_connection.py.
pytestmark = pytest.mark.sqlite_only


class Work(BaseModel):
    n: int


def register(jobs: Jobs) -> None:
    @jobs.job("schema.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Do nothing."""


def open_and_push(url: str, barrier: Barrier, worker: int) -> None:
    """One process: wait for the others, open the fresh database, push rows."""
    barrier.wait(60)
    jobs = Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))
    try:
        register(jobs)
        for n in range(ROWS_PER_PROCESS):
            jobs.push("schema.work", {"n": worker * 1000 + n})
    finally:
        jobs.close()


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def unique_indexes(connection: sqlite3.Connection) -> list[list[str]]:
    """The column lists of the unique indexes of ``job_executions``."""
    indexes = connection.execute("PRAGMA index_list(job_executions)").fetchall()
    return [
        [row[2] for row in connection.execute(f"PRAGMA index_info({index[1]})")]
        for index in indexes
        if index[2]
    ]


def test_processes_creating_one_fresh_database_at_once_all_succeed(
    db_url: str,
) -> None:
    """DESIGN §5: the first process migrates, the others wait and find the schema
    current; every push lands."""
    exit_codes = run_at_once(open_and_push, db_url, PROCESSES)

    assert exit_codes == [0] * PROCESSES
    with sqlite3.connect(sqlite_path(db_url)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        count = connection.execute("SELECT count(*) FROM job_executions").fetchone()
        assert count == (PROCESSES * ROWS_PER_PROCESS,)
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        assert "job_locks" in tables
        assert ["job_name", "key"] in unique_indexes(connection)
    connection.close()


def test_reopening_an_existing_database_does_not_migrate_again(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """DESIGN §5: a current ``user_version`` means nothing to apply."""
    logger = "alepha_jobs.store.sqlite_schema"

    with caplog.at_level(logging.INFO, logger=logger):
        make_jobs().close()
    first = [r for r in caplog.records if "migrated" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=logger):
        make_jobs().close()
    second = [r for r in caplog.records if "migrated" in r.getMessage()]

    assert len(first) == 2  # versions 1 and 2
    assert second == []


def test_a_database_from_a_newer_version_is_refused(db_url: str) -> None:
    """DESIGN §5: an unknown, newer schema is never touched."""
    path = sqlite_path(db_url)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(SchemaVersionError, match="99"):
        Jobs(db_url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (99,)
    connection.close()


def test_concurrent_keyed_pushes_of_the_same_keys_write_one_row_per_key(
    make_jobs: MakeJobs,
) -> None:
    """SPEC §2.1.1 step 7, B.4: 8 threads push 20 keys each; the unique index and
    the re-read of the winner leave exactly 20 rows, one id per key."""
    jobs = make_jobs()
    register(jobs)
    keys = [f"key-{n}" for n in range(20)]
    barrier = threading.Barrier(8, timeout=10)
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def pusher(offset: int) -> None:
        try:
            barrier.wait()
            order = keys[offset:] + keys[:offset]
            ids = {k: jobs.push("schema.work", {"n": 0}, key=k) for k in order}
            results.append(ids)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(results) == 8
    assert all(ids == results[0] for ids in results)
    page = jobs.executions("schema.work", size=100)
    assert page.total_elements == 20
    assert sorted(row.key or "" for row in page.content) == sorted(keys)


# version 1 -> 2 (partial indexes)

V1_ROWS = [
    # id, job_name, key, status, updated_at, scheduled_at, completed_at
    ("pending", None, "2020-01-01T00:00:00.000Z", None, None),
    ("pending", "live-key", "2020-01-01T00:00:00.000Z", None, None),
    ("scheduled", None, "2020-01-01T00:00:00.000Z", "2020-01-01T00:00:00.000Z", None),
    ("running", None, "2020-01-01T00:00:00.000Z", None, None),
    ("ok", None, "2020-01-01T00:00:00.000Z", None, "2020-01-01T00:00:00.000Z"),
    ("error", None, "2020-01-01T00:00:00.000Z", None, "2020-01-01T00:00:00.000Z"),
    ("cancelled", None, "2020-01-01T00:00:00.000Z", None, "2020-01-01T00:00:00.000Z"),
]


def version_1_file(path: Path) -> list[tuple[Any, ...]]:
    """A file as alepha_jobs with schema version 1 left it, with a row in every
    status and a keyed one; return its rows."""
    connection = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(connection)
    db.enable_wal()
    sqlite_schema.MIGRATIONS[1](db)
    connection.execute("PRAGMA user_version = 1")
    for status, key, updated, scheduled, completed in V1_ROWS:
        connection.execute(
            "INSERT INTO job_executions (id, created_at, updated_at, job_name, key, "
            "status, payload, scheduled_at, completed_at) "
            "VALUES (?, ?, ?, 'schema.work', ?, ?, '{\"n\":1}', ?, ?)",
            (str(uuid.uuid4()), updated, updated, key, status, scheduled, completed),
        )
    rows = all_rows(connection)
    connection.close()
    return rows


def all_rows(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return connection.execute("SELECT * FROM job_executions ORDER BY id").fetchall()


def index_names(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'job_executions' AND sql IS NOT NULL"
    )
    return {name for (name,) in rows}


def test_a_version_1_file_with_rows_migrates_to_2_and_keeps_every_row(
    db_url: str, make_jobs: MakeJobs
) -> None:
    """The version 1 indexes give way to the partial ones; every row is intact."""
    path = sqlite_path(db_url)
    before = version_1_file(path)

    make_jobs().close()

    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert index_names(connection) == {index.name for index in INDEXES}
        assert all_rows(connection) == before
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_migrated_version_1_file_keeps_working(
    db_url: str, make_jobs: MakeJobs
) -> None:
    """Its keyed row still holds its key, and each old row is found by the query
    that serves its status."""
    path = sqlite_path(db_url)
    version_1_file(path)
    jobs = make_jobs()
    register(jobs)
    store = jobs.store

    with closing(sqlite3.connect(path)) as connection:
        holder = connection.execute(
            "SELECT id FROM job_executions WHERE key = 'live-key'"
        ).fetchone()[0]
    assert jobs.push("schema.work", {"n": 2}, key="live-key") == holder
    fresh = jobs.push("schema.work", {"n": 3}, key="new-key")
    assert jobs.push("schema.work", {"n": 4}, key="new-key") == fresh
    now = clock.now()
    assert len(store.stale_pending(now, 10)) == 3  # two old, the new keyed one
    assert len(store.due_scheduled(now, 10)) == 1
    assert len(store.running(now, 10)) == 1
    groups = {group.status: group.count for group in store.terminal_groups()}
    assert groups == {"ok": 1, "error": 1, "cancelled": 1}
    assert store.live_counts() == {"schema.work": 5}
    assert jobs.executions("schema.work", size=100).total_elements == 8


def test_processes_opening_one_version_1_file_at_once_migrate_it_once(
    db_url: str,
) -> None:
    """The file lock of DESIGN §5 holds for the 1 -> 2 step as for a fresh file."""
    path = sqlite_path(db_url)
    before = version_1_file(path)

    exit_codes = run_at_once(open_and_push, db_url, PROCESSES)

    assert exit_codes == [0] * PROCESSES
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert index_names(connection) == {index.name for index in INDEXES}
        count = connection.execute("SELECT count(*) FROM job_executions").fetchone()
        assert count == (len(before) + PROCESSES * ROWS_PER_PROCESS,)
