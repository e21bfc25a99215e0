"""Locks as rows of ``job_locks`` in the Postgres outbox (extra ``postgres``).

The default lock store of a :class:`~alepha_jobs.store.postgres.PostgresStore`:
every process on every host that shares the outbox shares these locks. Expiry is
read through :mod:`alepha_jobs.clock`, as in the SQLite lock store. Each
operation goes through the store's pool and its retry after a lost connection;
each is safe to repeat (set-if-absent finds its own value on a retry).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .. import clock
from ..errors import LockError
from ..store.postgres import PostgresStore
from ..store.postgres_queries import LOCK_SQL
from .base import LockStore, is_expired


class PostgresLockStore(LockStore):
    """Locks in ``job_locks`` of the database of a :class:`PostgresStore`.

    The store is borrowed: :meth:`close` leaves it open for its owner. Expired rows
    read as absent; :meth:`prune` deletes them.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._driver_errors = store.driver_errors

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        now = clock.now()
        params = {
            "key": key,
            "value": value,
            "expires_at": None if ttl is None else now + ttl,
            "now": now,
        }

        def work(connection: Any, retried: bool) -> str:
            if not nx:
                connection.execute(LOCK_SQL["set"], params)
                return value
            with connection.transaction():
                taken = connection.execute(LOCK_SQL["set_nx"], params).fetchone()
                if taken is not None:
                    return str(taken[0])
                # the live row is locked by our upsert until we commit
                row = connection.execute(LOCK_SQL["get"], params).fetchone()
            return str(row[0])

        return self.store.run(work)

    def _get(self, key: str) -> str | None:
        params = {"key": key, "now": clock.now()}
        rows = self._rows("get", params)
        return None if not rows else str(rows[0][0])

    def _delete(self, keys: tuple[str, ...]) -> None:
        self._count("delete", {"keys": list(keys)})

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        now = clock.now()
        rows = self._rows("delete_if_owner", {"key": key, "owner": owner_id})
        # an expired row of ours goes too, but it was no longer a live lock
        return any(not is_expired(expires_at, now) for (expires_at,) in rows)

    def _prune(self) -> int:
        return self._count("prune", {"now": clock.now()})

    def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        def work(connection: Any, retried: bool) -> list[tuple[Any, ...]]:
            return list(connection.execute(LOCK_SQL[name], params).fetchall())

        return self.store.run(work)

    def _count(self, name: str, params: dict[str, Any]) -> int:
        def work(connection: Any, retried: bool) -> int:
            return int(connection.execute(LOCK_SQL[name], params).rowcount)

        return self.store.run(work)

    def _translate(self, error: BaseException) -> LockError:
        return LockError(f"lock store: {self.store.translate(error)}")
