"""Versioned creation and migration of the SQLite outbox, through sqlite-utils.

The version lives in ``PRAGMA user_version``. Several processes may start at once:
the first to take the file lock beside the database migrates, the others wait and
then find the schema current.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import filelock
import sqlite_utils

from ..errors import SchemaVersionError, StoreError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

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
_INDEXES: list[tuple[str, list[str], bool]] = [
    ("idx_je_status_scheduled", ["status", "scheduled_at"], False),
    ("idx_je_status_updated", ["status", "updated_at"], False),
    ("idx_je_job_status_scheduled", ["job_name", "status", "scheduled_at"], False),
    ("idx_je_job_status_created", ["job_name", "status", "created_at"], False),
    ("idx_je_job_status_completed", ["job_name", "status", "completed_at"], False),
    ("idx_je_job_started", ["job_name", "started_at"], False),
    ("uq_je_job_key", ["job_name", "key"], True),
]


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
    for name, columns, unique in _INDEXES:
        db["job_executions"].create_index(  # type: ignore[union-attr]
            columns, index_name=name, unique=unique, if_not_exists=True
        )
    db["job_locks"].create(  # type: ignore[union-attr]
        {"key": str, "value": str, "expires_at": str},
        pk="key",
        not_null={"value"},
        if_not_exists=True,
    )


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _version_1}
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
        with connection:
            MIGRATIONS[target](db)
            connection.execute(f"PRAGMA user_version = {target}")
        logger.info(
            "outbox schema of %s migrated to version %d",
            path,
            target,
            extra={"event": "schema.migrated", "version": target},
        )
