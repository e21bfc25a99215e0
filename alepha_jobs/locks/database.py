"""The default lock store: rows of ``job_locks`` in the outbox's SQLite file.

Every process that shares the outbox shares these locks, so a cron instant runs once
across them without any other service. Each operation is one guarded statement; the
set-if-absent also reads its result back inside the same ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import cast

from .. import clock
from ..errors import LockError
from ..store.sqlite import SqliteStore
from .base import LockStore

_UPSERT = """
    INSERT INTO job_locks (key, value, expires_at)
    VALUES (:key, :value, :expires_at)
    ON CONFLICT(key) DO UPDATE
    SET value = excluded.value, expires_at = excluded.expires_at"""

_SQL = {
    "set": _UPSERT,
    # replaces only an expired row; a live row keeps its value
    "set_nx": _UPSERT
    + """
    WHERE job_locks.expires_at IS NOT NULL AND job_locks.expires_at <= :now""",
    "get": """
        SELECT value FROM job_locks
        WHERE key = :key AND (expires_at IS NULL OR expires_at > :now)""",
    "delete": "DELETE FROM job_locks WHERE key = :key",
    # prefix compare with substr, not LIKE: owner ids may contain % or _
    "delete_if_owner": """
        DELETE FROM job_locks
        WHERE key = :key
          AND (value = :owner OR substr(value, 1, length(:owner) + 1) = :owner || ',')
        RETURNING expires_at""",
    "prune": """
        DELETE FROM job_locks
        WHERE expires_at IS NOT NULL AND expires_at <= :now""",
}


class DatabaseLockStore(LockStore):
    """Locks as rows of ``job_locks`` in the database of an :class:`SqliteStore`.

    The store is borrowed: :meth:`close` leaves it open for its owner. Expired rows
    read as absent; :meth:`prune` deletes them.
    """

    _driver_errors = (sqlite3.Error,)

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        now = clock.now()
        params = {
            "key": key,
            "value": value,
            "expires_at": None if ttl is None else clock.to_text(now + ttl),
            "now": clock.to_text(now),
        }
        if not nx:
            self.store.connection().execute(_SQL["set"], params)
            return value
        with self.store.transaction() as connection:
            connection.execute(_SQL["set_nx"], params)
            row = connection.execute(_SQL["get"], params).fetchone()
        return str(row[0])

    def _get(self, key: str) -> str | None:
        params = {"key": key, "now": clock.to_text(clock.now())}
        row = self.store.connection().execute(_SQL["get"], params).fetchone()
        return None if row is None else str(row[0])

    def _delete(self, keys: tuple[str, ...]) -> None:
        with self.store.transaction() as connection:
            connection.executemany(_SQL["delete"], [{"key": key} for key in keys])

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        now = clock.to_text(clock.now())
        params = {"key": key, "owner": owner_id}
        cursor = self.store.connection().execute(_SQL["delete_if_owner"], params)
        rows = cursor.fetchall()  # step to the end, so the delete commits now
        # an expired row of ours goes too, but it was no longer a live lock
        return any(expires_at is None or expires_at > now for (expires_at,) in rows)

    def _prune(self) -> int:
        params = {"now": clock.to_text(clock.now())}
        return self.store.connection().execute(_SQL["prune"], params).rowcount

    def _translate(self, error: BaseException) -> LockError:
        translated = self.store.translate(cast(sqlite3.Error, error))
        return LockError(f"lock store: {translated}")
