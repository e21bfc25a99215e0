"""The Postgres outbox (extra ``postgres``): psycopg 3 and a psycopg_pool pool.

Same contract and guards as :class:`~alepha_jobs.store.sqlite.SqliteStore`, for
processes on several hosts. Connections are autocommit; a method that needs two
statements opens an explicit transaction. The URL may carry ``schema=NAME`` (the
tables live in that schema, created if missing), ``pool_max_size=N`` and
``pool_timeout=SECONDS``; every other parameter goes to libpq. The pool, the
URL, error translation, reconnection and migration live in
:mod:`~alepha_jobs.store.postgres_connection`; this module holds the transitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import InvalidArgumentError
from .base import (
    Due,
    Execution,
    ExecutionQuery,
    Group,
    NewExecution,
    Status,
    Store,
    TerminalRun,
)
from .postgres_connection import (
    PostgresConnections,
    _translated,
    is_postgres_url,
    masked,
)
from .postgres_queries import PG_SQL, statement
from .queries import COLUMNS, LIST_COLUMNS, SORTS, status_filter
from .sqlite import _TRIGGERS

__all__ = ["PostgresStore", "is_postgres_url", "masked"]


class PostgresStore(PostgresConnections, Store):
    """The outbox in a Postgres database shared by processes on several hosts.

    :param url: ``postgresql://user:password@host:port/database`` (or
        ``postgres://``), optionally with ``?schema=NAME`` and
        ``pool_max_size=N`` (connections per process, default 20) and
        ``pool_timeout=SECONDS`` (how long a statement waits for a connection,
        default 30).
    :raises ConfigurationError: psycopg is not installed, or the URL is malformed.
    :raises StoreError: the server is unreachable, refuses the credentials, or
        the schema cannot be migrated.
    :raises SchemaVersionError: the schema was written by a newer alepha_jobs.
    """

    def _execute(self, name: str, params: dict[str, Any]) -> int:
        def work(connection: Any, retried: bool) -> int:
            return int(connection.execute(statement(name), params).rowcount)

        return self.run(work)

    def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        def work(connection: Any, retried: bool) -> list[tuple[Any, ...]]:
            return list(connection.execute(statement(name), params).fetchall())

        return self.run(work)

    # pushes

    @_translated
    def insert(self, rows: Sequence[NewExecution]) -> None:
        params = [self._insert_params(row, clock.now()) for row in rows]

        def work(connection: Any, retried: bool) -> None:
            name = "insert_again" if retried else "insert"
            if len(params) == 1:  # one statement, one round trip, its own commit
                connection.execute(statement(name), params[0])
                return
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(statement(name), params)

        self.run(work)

    @_translated
    def insert_keyed(self, row: NewExecution) -> tuple[str, bool]:
        params = self._insert_params(row, clock.now())
        key = {"job_name": row.job_name, "key": row.key}

        def work(connection: Any, retried: bool) -> tuple[str | None, bool]:
            with connection.transaction():
                created = connection.execute(statement("insert_keyed"), params)
                if created.fetchone() is not None:
                    return row.id, True
                winner = connection.execute(statement("get_by_key"), key).fetchone()
            return (None if winner is None else winner[0]), False

        execution_id, created = self.run(work)
        if execution_id is None:  # the holder ended between our insert and read
            return self.insert_keyed(row)
        return execution_id, created

    def insert_in(self, connection: Any, row: NewExecution) -> str:
        psycopg, sql = self._db.psycopg, self._db.sql
        if not isinstance(connection, psycopg.Connection) or connection.closed:
            given = (
                type(connection).__name__
                if not isinstance(connection, psycopg.Connection)
                else "a closed one"
            )
            raise InvalidArgumentError(
                "connection= must be an open psycopg.Connection to the outbox "
                f"database {self.database!r}, got {given}"
            )
        table = sql.Identifier(self.schema or self.current_schema, "job_executions")
        params = self._insert_params(row, clock.now())
        try:
            self._check_same_database(connection, table.as_string(connection))
            insert = sql.SQL(PG_SQL["insert_in_keyed"]).format(table=table)
            created = connection.execute(insert, params).fetchone()
            if created is not None:
                return row.id
            winner = sql.SQL(PG_SQL["insert_in_winner"]).format(table=table)
            found = connection.execute(winner, params).fetchone()
        except psycopg.Error as error:
            raise self.translate(error) from error
        return str(found[0])

    def _check_same_database(self, connection: Any, table: str) -> None:
        database, exists = connection.execute(
            "SELECT current_database(), to_regclass(%s) IS NOT NULL", (table,)
        ).fetchone()
        if database != self.database or not exists:
            raise InvalidArgumentError(
                f"connection= is open on database {database!r}, not on the outbox "
                f"{self._where} ({table}); the row must share the caller's database"
            )

    @_translated
    def insert_terminal(self, run: TerminalRun) -> None:
        params = {
            "id": run.id,
            "job_name": run.job_name,
            "status": run.status,
            "started_at": _ms(run.started_at),
            "completed_at": _ms(run.completed_at),
            "error": _scrub(run.error),
            "logs": self._json(_scrub(run.logs)),
            "triggered_by": run.triggered_by,
            "triggered_by_name": run.triggered_by_name,
        }

        def work(connection: Any, retried: bool) -> None:
            name = "insert_terminal_again" if retried else "insert_terminal"
            connection.execute(statement(name), params)

        self.run(work)

    @_translated
    def get(self, execution_id: str) -> Execution | None:
        rows = self._rows("get", {"id": execution_id})
        return _execution(rows[0]) if rows else None

    # transitions

    @_translated
    def claim(self, execution_id: str, now: datetime) -> Execution | None:
        rows = self._rows("claim", {"id": execution_id, "now": _ms(now)})
        return _execution(rows[0]) if rows else None

    batches = True

    @_translated
    def claim_batch(self, ids: Sequence[str], now: datetime) -> list[Execution]:
        rows = self._rows("claim_batch", {"ids": list(ids), "now": _ms(now)})
        return [_execution(row) for row in rows]

    @_translated
    def succeed_batch(
        self, outcomes: Sequence[tuple[str, list[Any], bool, datetime]], now: datetime
    ) -> list[bool]:
        kept = [(i, logs, started) for i, logs, keep, started in outcomes if keep]
        dropped = [i for i, _, keep, _ in outcomes if not keep]
        keep_params = {
            "ids": [i for i, _, _ in kept],
            "logs": [self._json(_scrub(logs or [])) for _, logs, _ in kept],
            "started": [_ms(started) for _, _, started in kept],
            "now": _ms(now),
        }

        def work(connection: Any, retried: bool) -> set[str]:
            done: set[str] = set()
            with connection.transaction():
                if kept:
                    cursor = connection.execute(
                        statement("succeed_batch_keep"), keep_params
                    )
                    done.update(row[0] for row in cursor.fetchall())
                if dropped:
                    cursor = connection.execute(
                        statement("delete_running_many"), {"ids": dropped}
                    )
                    done.update(row[0] for row in cursor.fetchall())
            return done

        done = self.run(work)
        return [outcome[0] in done for outcome in outcomes]

    @_translated
    def mark_started(self, execution_id: str, started_at: datetime) -> bool:
        params = {"id": execution_id, "started_at": _ms(started_at)}
        return self._execute("mark_started", params) == 1

    @_translated
    def release_unstarted(self, ids: Sequence[str], now: datetime) -> int:
        if not ids:
            return 0
        return self._execute("release_unstarted", {"ids": list(ids), "now": _ms(now)})

    @_translated
    def release_crashed(self, execution_id: str, now: datetime, note: str) -> bool:
        params = {"id": execution_id, "now": _ms(now), "note": _scrub(note)}
        return self._execute("release_crashed", params) == 1

    @_translated
    def renew(self, ids: Iterable[str], now: datetime) -> set[str]:
        params = {"ids": list(ids), "now": _ms(now)}
        return {row[0] for row in self._rows("renew", params)}

    @_translated
    def succeed(
        self, execution_id: str, now: datetime, logs: list[Any], keep: bool
    ) -> bool:
        if not keep:
            return self._execute("delete_if_running", {"id": execution_id}) == 1
        params = {"id": execution_id, "now": _ms(now), "logs": self._json(_scrub(logs))}
        return self._execute("succeed_keep", params) == 1

    @_translated
    def retry_later(
        self,
        execution_id: str,
        now: datetime,
        error: str,
        scheduled_at: datetime,
        logs: list[Any] | None,
    ) -> bool:
        params = {
            "id": execution_id,
            "now": _ms(now),
            "error": _scrub(error),
            "scheduled_at": _ms(scheduled_at),
            "logs": self._json(_scrub(logs)),
        }
        return self._execute("retry_later", params) == 1

    @_translated
    def fail(
        self,
        execution_id: str,
        now: datetime,
        error: str,
        logs: list[Any] | None,
        keep: bool,
        from_status: Status = "running",
    ) -> bool:
        if not keep:
            return self._execute(f"delete_if_{from_status}", {"id": execution_id}) == 1
        params = {
            "id": execution_id,
            "now": _ms(now),
            "error": _scrub(error),
            "logs": self._json(_scrub(logs)),
            "from_status": from_status,
        }
        return self._execute("fail", params) == 1

    @_translated
    def park(
        self,
        execution_id: str,
        now: datetime,
        scheduled_at: datetime,
        payload: dict[str, Any] | None,
    ) -> bool:
        params = {
            "id": execution_id,
            "now": _ms(now),
            "scheduled_at": _ms(scheduled_at),
            "payload": self._json(payload),
        }
        return self._execute("park", params) == 1

    @_translated
    def promote(self, execution_id: str, now: datetime, due_only: bool) -> bool:
        name = "promote_due" if due_only else "promote"
        return self._execute(name, {"id": execution_id, "now": _ms(now)}) == 1

    @_translated
    def bump_redispatch(self, execution_id: str, now: datetime) -> bool:
        params = {"id": execution_id, "now": _ms(now)}
        return self._execute("bump_redispatch", params) == 1

    @_translated
    def cancel(
        self, execution_id: str, now: datetime, by: str | None, by_name: str | None
    ) -> bool:
        params = {"id": execution_id, "now": _ms(now), "by": by, "by_name": by_name}
        return self._execute("cancel", params) == 1

    @_translated
    def cancel_by_key(
        self,
        job_name: str,
        key: str,
        now: datetime,
        by: str | None,
        by_name: str | None,
    ) -> str | None:
        params = {
            "job_name": job_name,
            "key": key,
            "now": _ms(now),
            "by": by,
            "by_name": by_name,
        }
        rows = self._rows("cancel_by_key", params)
        return rows[0][0] if rows else None

    @_translated
    def delete_cancelled(self, execution_id: str) -> bool:
        return self._execute("delete_cancelled", {"id": execution_id}) == 1

    @_translated
    def delete_terminal(self, ids: Sequence[str]) -> int:
        return self._execute("delete_terminal", {"ids": list(dict.fromkeys(ids))})

    # sweep and pickup

    @_translated
    def due_scheduled(self, now: datetime, limit: int) -> list[Due]:
        rows = self._rows("due_scheduled", {"now": _ms(now), "limit": limit})
        return [Due(id=row[0], job_name=row[1]) for row in rows]

    @_translated
    def stale_pending(self, cutoff: datetime, limit: int) -> list[Due]:
        rows = self._rows("stale_pending", {"cutoff": _ms(cutoff), "limit": limit})
        return [Due(row[0], row[1], redispatch_count=row[2] or 0) for row in rows]

    @_translated
    def running(self, cutoff: datetime, limit: int) -> list[Due]:
        rows = self._rows("running", {"cutoff": _ms(cutoff), "limit": limit})
        return [
            Due(
                id=row[0],
                job_name=row[1],
                attempt=row[2],
                started_at=_utc(row[3]),
                updated_at=_utc(row[4]),
            )
            for row in rows
        ]

    @_translated
    def ready(self, cutoff: datetime, names: Sequence[str], limit: int) -> list[Due]:
        params = {"cutoff": _ms(cutoff), "names": list(names), "limit": limit}
        return [Due(id=row[0], job_name=row[1]) for row in self._rows("ready", params)]

    # trim

    @_translated
    def unregistered_ids(
        self, names: Sequence[str], limit: int, live: bool
    ) -> list[str]:
        params = {"names": list(names), "limit": limit, "live": live}
        return [row[0] for row in self._rows("unregistered_ids", params)]

    @_translated
    def delete_ids(self, ids: Sequence[str]) -> int:
        return self._execute("delete_ids", {"ids": list(dict.fromkeys(ids))})

    @_translated
    def terminal_groups(self) -> list[Group]:
        return [
            Group(
                job_name=row[0],
                status=row[1],
                count=int(row[2]),
                oldest=_utc(row[3]),
                newest=_utc(row[4]),
            )
            for row in self._rows("terminal_groups", {})
        ]

    @_translated
    def ids_beyond(
        self, job_name: str, status: Status, offset: int, limit: int
    ) -> list[str]:
        params = {
            "job_name": job_name,
            "status": status,
            "offset": offset,
            "limit": limit,
        }
        return [row[0] for row in self._rows("ids_beyond", params)]

    @_translated
    def ids_completed_before(
        self,
        job_name: str,
        status: Status,
        cutoff: datetime,
        spare: str | None,
        limit: int,
    ) -> list[str]:
        params = {
            "job_name": job_name,
            "status": status,
            "cutoff": _ms(cutoff),
            "spare": spare or "",
            "limit": limit,
        }
        return [row[0] for row in self._rows("ids_completed_before", params)]

    @_translated
    def newest_id(self, job_name: str, status: Status) -> str | None:
        rows = self._rows("newest_id", {"job_name": job_name, "status": status})
        return rows[0][0] if rows else None

    @_translated
    def live_counts(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in self._rows("live_counts", {})}

    # admin

    @_translated
    def list(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        where, params = _filters(query)
        count = PG_SQL["list_count"].format(where=where)
        page = PG_SQL["list_page"].format(
            columns=LIST_COLUMNS, where=where, order=SORTS[query.sort]
        )
        params.update(size=query.size, offset=query.page * query.size)

        def work(connection: Any, retried: bool) -> tuple[Any, list[Any]]:
            total = connection.execute(count, params).fetchone()[0]
            return total, connection.execute(page, params).fetchall()

        total, rows = self.run(work)
        return [_execution(row, _LIST_NAMES) for row in rows], int(total)

    # values

    def _json(self, value: Any) -> Any:
        return None if value is None else self._db.Jsonb(value)

    def _payload(self, row: NewExecution) -> Any:
        """``row.payload`` for JSONB, written from its JSON text if it has one."""
        if row.payload_json is None:
            return self._json(row.payload)
        return self._db.Jsonb(row.payload_json, dumps=_as_is)

    def _insert_params(self, row: NewExecution, now: datetime) -> dict[str, Any]:
        scheduled = row.scheduled_at
        return {
            "id": row.id,
            "now": _ms(now),
            "job_name": row.job_name,
            "key": row.key,
            "status": row.status,
            "max_attempts": row.max_attempts,
            "payload": self._payload(row),
            "scheduled_at": None if scheduled is None else _ms(scheduled),
            "triggered_by": row.triggered_by,
            "triggered_by_name": row.triggered_by_name,
        }


_TIMES = ("created_at", "updated_at", "scheduled_at", "started_at", "completed_at")
_NAMES = [name.strip() for name in COLUMNS.split(",")]
_LIST_NAMES = [name.strip() for name in LIST_COLUMNS.split(",")]


def _ms(moment: datetime) -> datetime:
    """An aware UTC datetime truncated to milliseconds, as SQLite stores it."""
    utc = moment.astimezone(clock.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _as_is(text: str) -> str:
    return text


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(clock.UTC)


def _scrub(value: Any) -> Any:
    """Replace U+0000, which Postgres text and JSONB refuse, in library-written
    values (error messages and captured logs); payloads are refused upstream."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def _execution(row: Sequence[Any], names: list[str] = _NAMES) -> Execution:
    values = dict(zip(names, row, strict=True))
    for name in _TIMES:
        values[name] = _utc(values[name])
    return Execution(**values)


def _filters(query: ExecutionQuery) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.job_name is not None:
        clauses.append("job_name = %(job_name)s")
        params["job_name"] = query.job_name
    if query.statuses:
        clauses.append(status_filter(query.statuses))
    if query.trigger is not None:
        clauses.append(_TRIGGERS[query.trigger])
    if query.started_from is not None:
        clauses.append("started_at >= %(started_from)s")
        params["started_from"] = _ms(query.started_from)
    if query.started_to is not None:
        clauses.append("started_at <= %(started_to)s")
        params["started_to"] = _ms(query.started_to)
    if query.key is not None:
        clauses.append("strpos(key, %(key)s) > 0")
        params["key"] = query.key
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
