"""Raw access to a test's outbox, the same on SQLite and Postgres.

Tests craft rows (old timestamps, odd statuses) and read columns the public API
does not show. SQL is written once, SQLite style (``?`` or ``:name``), and
datetimes are passed as aware datetimes; this module adapts both to the store.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from typing import Any

from alepha_jobs import Jobs
from alepha_jobs.clock import to_text
from alepha_jobs.store.sqlite import SqliteStore

Params = Sequence[Any] | Mapping[str, Any]

_NAMED = re.compile(r"(?<!:):([a-z_]+)")


class Rows(list[tuple[Any, ...]]):
    """Fetched rows, answering the cursor calls tests already make."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self[0] if self else None


class Raw:
    """One connection to the outbox, in autocommit mode."""

    def __init__(self, connection: Any, sqlite: bool) -> None:
        self._connection = connection
        self._sqlite = sqlite

    def execute(self, sql: str, params: Params = ()) -> Rows:
        """Run one statement; return its rows (none for a write)."""
        cursor = self._connection.execute(self._sql(sql), self._params(params))
        return (
            Rows(tuple(row) for row in cursor.fetchall())
            if cursor.description
            else Rows()
        )

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if self._sqlite:
            self._connection.executemany(sql, [self._params(row) for row in rows])
            return
        with self._connection.cursor() as cursor:
            cursor.executemany(self._sql(sql), [self._params(row) for row in rows])

    def _sql(self, sql: str) -> str:
        if self._sqlite:
            return sql
        escaped = sql.replace("%", "%%").replace("?", "%s")
        return _NAMED.sub(r"%(\1)s", escaped)

    def _params(self, params: Params) -> Params:
        if isinstance(params, Mapping):
            return {name: self._value(value) for name, value in params.items()}
        return [self._value(value) for value in params]

    def _value(self, value: Any) -> Any:
        return to_text(value) if self._sqlite and isinstance(value, datetime) else value


@contextmanager
def connect(jobs: Jobs) -> Iterator[Raw]:
    """A raw autocommit connection to ``jobs``'s outbox."""
    store = jobs.store
    if isinstance(store, SqliteStore):
        connection = sqlite3.connect(store.path, timeout=30, isolation_level=None)
        with closing(connection):
            yield Raw(connection, sqlite=True)
        return
    with store.connection() as connection:  # type: ignore[attr-defined]
        yield Raw(connection, sqlite=False)


def insert_row(jobs: Jobs, **columns: Any) -> str:
    """Write one crafted row; ``id`` defaults to a fresh UUID. Return the id."""
    values = {"id": str(uuid.uuid4()), **columns}
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    with connect(jobs) as raw:
        raw.execute(f"INSERT INTO job_executions ({names}) VALUES ({marks})", values)
    return str(values["id"])


def is_sqlite(jobs: Jobs) -> bool:
    return isinstance(jobs.store, SqliteStore)


class CallerTransaction:
    """The caller's own connection to the outbox database, in an open transaction:
    a sqlite3 connection on the file, or a psycopg one (not autocommit) on the
    test server, as DESIGN §8.7 expects ``push(..., connection=...)`` to get."""

    def __init__(self, jobs: Jobs) -> None:
        self._sqlite = is_sqlite(jobs)
        if self._sqlite:
            path = jobs.store.path  # type: ignore[attr-defined]
            self.connection: Any = sqlite3.connect(path, isolation_level=None)
            self.connection.execute("BEGIN")
            return
        import psycopg

        from .postgres_service import SERVER

        schema = jobs.store.schema  # type: ignore[attr-defined]
        self.connection = psycopg.connect(SERVER)
        self.connection.execute(f'SET search_path TO "{schema}"')
        self.connection.commit()  # the session's path; the caller's work follows

    def execute(self, sql: str) -> None:
        """Run a statement of the caller's own in the transaction."""
        self.connection.execute(sql)

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        self._end("ROLLBACK")

    def _end(self, word: str) -> None:
        if not self._sqlite:
            getattr(self.connection, word.lower())()
            return
        self.connection.execute(word)
        self.connection.execute("BEGIN")  # the next statements: a new transaction


@contextmanager
def caller_transaction(jobs: Jobs) -> Iterator[CallerTransaction]:
    """Yield the caller's transaction; close its connection afterwards (an
    uncommitted transaction is rolled back)."""
    transaction = CallerTransaction(jobs)
    try:
        yield transaction
    finally:
        transaction.connection.close()
