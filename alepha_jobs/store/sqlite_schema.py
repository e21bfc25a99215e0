"""Versioned creation and migration of the SQLite outbox, through sqlite-utils.

The version lives in ``PRAGMA user_version``. Several processes may start at once:
the first to take the file lock beside the database migrates, the others wait and
then find the schema current.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import filelock
import sqlite_utils

from ..errors import SchemaVersionError, StoreError
from .queries import TERMINAL

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_EXECUTION_COLUMNS: dict[str, type] = {
    "id": str,
    "created_at": str,
    "updated_at": str,
    "job_name": str,
    "key": str,
    "status": str,
    "attempt": int,
    "max_attempts": int,
    "redispatch_count": int,
    "payload": str,
    "scheduled_at": str,
    "started_at": str,
    "completed_at": str,
    "error": str,
    "logs": str,
    "triggered_by": str,
    "triggered_by_name": str,
    "cancelled_by": str,
    "cancelled_by_name": str,
}


@dataclasses.dataclass(frozen=True)
class Index:
    """One index of ``job_executions``; ``where`` makes it partial."""

    name: str
    columns: str
    where: str = ""
    unique: bool = False

    def create(self, prefix: str = "") -> str:
        """``CREATE INDEX`` text, on the table in schema ``prefix`` (``"s".``)."""
        unique = "UNIQUE " if self.unique else ""
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"CREATE {unique}INDEX IF NOT EXISTS {self.name} "
            f"ON {prefix}job_executions ({self.columns}){where}"
        )


# Version 1: the index list of SPEC §3.2, kept so that a fresh database replays
# the same history as an old one; version 2 drops them.
V1_INDEXES: list[Index] = [
    Index("idx_je_status_scheduled", "status, scheduled_at"),
    Index("idx_je_status_updated", "status, updated_at"),
    Index("idx_je_job_status_scheduled", "job_name, status, scheduled_at"),
    Index("idx_je_job_status_created", "job_name, status, created_at"),
    Index("idx_je_job_status_completed", "job_name, status, completed_at"),
    Index("idx_je_job_started", "job_name, started_at"),
    Index("uq_je_job_key", "job_name, key", unique=True),
]

# Version 2 (SQLite and Postgres alike) replaces SPEC §3.2's list, for write
# speed: a status change rewrites only the entries of the partial indexes it
# leaves and enters, and the listing index never moves, where version 1 rewrote
# 5-6 of its 8 b-trees. A query reaches a partial index only if its WHERE
# repeats the predicate literally (queries.py does): neither SQLite nor a
# generic Postgres plan can prove it from a bound parameter.
INDEXES: list[Index] = [
    Index("idx_je_pending", "updated_at", "status = 'pending'"),
    Index("idx_je_scheduled", "scheduled_at", "status = 'scheduled'"),
    Index("idx_je_running", "updated_at", "status = 'running'"),
    Index("idx_je_job_created", "job_name, created_at"),
    Index("idx_je_job_terminal", "job_name, status, completed_at", TERMINAL),
    Index("uq_je_job_key", "job_name, key", "key IS NOT NULL", unique=True),
]


def version_2_statements(prefix: str = "") -> list[str]:
    """Drop the version 1 indexes and create those of version 2; repeatable."""
    drops = [f"DROP INDEX IF EXISTS {prefix}{index.name}" for index in V1_INDEXES]
    return drops + [index.create(prefix) for index in INDEXES]


def _version_1(db: sqlite_utils.Database) -> None:
    db["job_executions"].create(  # type: ignore[union-attr]
        _EXECUTION_COLUMNS,
        pk="id",
        not_null={
            "created_at",
            "updated_at",
            "job_name",
            "status",
            "attempt",
            "max_attempts",
            "redispatch_count",
        },  # fmt: skip
        defaults={
            "status": "pending",
            "attempt": 0,
            "max_attempts": 1,
            "redispatch_count": 0,
        },  # fmt: skip
        if_not_exists=True,
    )
    for index in V1_INDEXES:
        db.execute(index.create())
    db["job_locks"].create(  # type: ignore[union-attr]
        {"key": str, "value": str, "expires_at": str},
        pk="key",
        not_null={"value"},
        if_not_exists=True,
    )


def _version_2(db: sqlite_utils.Database) -> None:
    for ddl in version_2_statements():
        db.execute(ddl)


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _version_1,
    2: _version_2,
}
_TABLES = {"job_executions": set(_EXECUTION_COLUMNS), "job_locks": {"key", "value"}}


def _refuse_foreign_tables(db: sqlite_utils.Database, path: Path) -> None:
    """An unversioned file with our table names holds another application's
    tables: refuse it rather than index and stamp them."""
    for table, needed in _TABLES.items():
        if not db[table].exists():
            continue
        missing = needed - set(db[table].columns_dict)  # type: ignore[union-attr]
        if missing:
            raise StoreError(
                f"SQLite database {str(path)!r} already has a table {table} that "
                f"alepha_jobs did not create (no column {sorted(missing)[0]}); "
                "point at another database"
            )


def migrate(path: Path, connect: Callable[[], sqlite3.Connection]) -> None:
    """Bring the database at ``path`` to :data:`SCHEMA_VERSION`.

    :raises SchemaVersionError: the file was written by a newer alepha_jobs.
    :raises sqlite3.Error: the file cannot be opened or is not a database.
    """
    connection = connect()
    try:
        if _current(connection, path) == SCHEMA_VERSION:
            return
        with filelock.FileLock(str(path) + ".lock", timeout=60):
            _apply(connection, path)
    finally:
        connection.close()


def _current(connection: sqlite3.Connection, path: Path) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"SQLite database {str(path)!r} has schema version {version}, newer than "
            f"the {SCHEMA_VERSION} this alepha_jobs understands; upgrade alepha_jobs "
            "or point at another database"
        )
    return version


def _apply(connection: sqlite3.Connection, path: Path) -> None:
    version = _current(connection, path)
    if version == SCHEMA_VERSION:
        return
    db = sqlite_utils.Database(connection)
    if version == 0:
        _refuse_foreign_tables(db, path)
    db.enable_wal()
    for target in range(version + 1, SCHEMA_VERSION + 1):
        _step(connection, db, target)
        logger.info(
            "outbox schema of %s migrated to version %d",
            path,
            target,
            extra={"event": "schema.migrated", "version": target},
        )


def _step(
    connection: sqlite3.Connection, db: sqlite_utils.Database, target: int
) -> None:
    """Apply migration ``target`` and stamp it in one write transaction. Every
    step is also safe to repeat (``IF [NOT] EXISTS``), should one commit early."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        MIGRATIONS[target](db)
        connection.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    if connection.in_transaction:
        connection.execute("COMMIT")
