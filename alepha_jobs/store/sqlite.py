"""The SQLite outbox: one connection per thread, WAL, ``BEGIN IMMEDIATE`` writes.

Connections, URL parsing and the group-commit writer live in
:mod:`~alepha_jobs.store.sqlite_connection`; this module holds the transitions.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import InvalidArgumentError
from .base import (
    LIVE_STATUSES,
    Due,
    Execution,
    ExecutionQuery,
    Group,
    NewExecution,
    Status,
    Store,
    TerminalRun,
)
from .queries import (
    COLUMNS,
    LIST_COLUMNS,
    SORTS,
    SQL,
    placeholders,
    status_filter,
)
from .sqlite_connection import (
    SqliteConnections,
    _flush,
    _Pending,
    _translated,
    path_from_url,
    synchronous_from_url,
)

__all__ = [
    "SqliteStore",
    "_Pending",
    "_flush",
    "path_from_url",
    "synchronous_from_url",
]

logger = logging.getLogger(__name__)


class SqliteStore(SqliteConnections, Store):
    """The default outbox, in one SQLite file shared by every local process."""

    batches = True

    def _run(self, name: str, **params: Any) -> int:
        """One writing statement; return its row count."""
        result: int = self._grouped(SQL[name], params, fetch=False)
        return result

    def _rows(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        return self._conn.execute(SQL[name], params).fetchall()

    # pushes

    @_translated
    def insert(self, rows: Sequence[NewExecution]) -> None:
        now = clock.now_text()
        params = [_insert_params(row, now) for row in rows]
        if len(params) == 1:  # a push: committed with other threads' writes
            self._grouped(SQL["insert"], params[0], fetch=False)
            return
        with self._write() as connection:
            connection.executemany(SQL["insert"], params)

    @_translated
    def insert_keyed(self, row: NewExecution) -> tuple[str, bool]:
        params = _insert_params(row, clock.to_text(clock.now()))
        with self._write() as connection:
            created = connection.execute(SQL["insert_keyed"], params).fetchone()
            if created is not None:
                return row.id, True
            winner = connection.execute(
                SQL["get_by_key"], {"job_name": row.job_name, "key": row.key}
            ).fetchone()
        if winner is None:  # the holder ended between our insert and read
            return self.insert_keyed(row)
        return winner[0], False

    def insert_in(self, connection: Any, row: NewExecution) -> str:
        if not isinstance(connection, sqlite3.Connection) or _closed(connection):
            given = (
                type(connection).__name__
                if not isinstance(connection, sqlite3.Connection)
                else "a closed one"
            )
            raise InvalidArgumentError(
                f"connection= must be an open sqlite3.Connection to {self.path}, "
                f"got {given}"
            )
        try:
            self._check_same_file(connection)
            params = _insert_params(row, clock.to_text(clock.now()))
            created = connection.execute(SQL["insert_keyed"], params).fetchone()
            if created is not None:
                return row.id
            winner = connection.execute(
                SQL["get_by_key"], {"job_name": row.job_name, "key": row.key}
            ).fetchone()
        except sqlite3.Error as error:
            raise self.translate(error) from error
        return str(winner[0])

    def _check_same_file(self, connection: sqlite3.Connection) -> None:
        main = connection.execute("PRAGMA database_list").fetchone()
        if not main or Path(main[2]).resolve() != self.path.resolve():
            raise InvalidArgumentError(
                f"connection= is open on {main[2] if main else '?'!r}, not on the "
                f"outbox {str(self.path)!r}; the row must share the caller's database"
            )

    @_translated
    def insert_terminal(self, run: TerminalRun) -> None:
        self._run(
            "insert_terminal",
            id=run.id,
            job_name=run.job_name,
            status=run.status,
            started_at=clock.to_text(run.started_at),
            completed_at=clock.to_text(run.completed_at),
            error=run.error,
            logs=_json(run.logs),
            triggered_by=run.triggered_by,
            triggered_by_name=run.triggered_by_name,
        )

    @_translated
    def get(self, execution_id: str) -> Execution | None:
        row = self._conn.execute(SQL["get"], {"id": execution_id}).fetchone()
        return None if row is None else _execution(row)

    # transitions

    @_translated
    def claim(self, execution_id: str, now: datetime) -> Execution | None:
        params = {"id": execution_id, "now": clock.to_text(now)}
        rows = self._grouped(SQL["claim"], params, fetch=True)
        return _execution(rows[0]) if rows else None

    @_translated
    def claim_batch(self, ids: Sequence[str], now: datetime) -> list[Execution]:
        claimed: list[Execution] = []
        for chunk in _chunks(list(ids), 500):
            params: dict[str, Any] = {f"i{n}": value for n, value in enumerate(chunk)}
            params["now"] = clock.to_text(now)
            sql = SQL["claim_batch"].format(ids=placeholders("i", len(chunk)))
            claimed.extend(_execution(row) for row in self._grouped(sql, params, True))
        return claimed

    @_translated
    def succeed_batch(
        self, outcomes: Sequence[tuple[str, list[Any], bool, datetime]], now: datetime
    ) -> list[bool]:
        text = clock.to_text(now)
        statements = []
        for execution_id, logs, keep, started_at in outcomes:
            if keep:
                params = {
                    "id": execution_id,
                    "now": text,
                    "logs": _json(logs),
                    "started_at": clock.to_text(started_at),
                }
                statements.append((SQL["succeed_batch_keep"], params))
            else:
                statements.append((SQL["delete_if_running"], {"id": execution_id}))
        if not statements:
            return []
        return [count == 1 for count in self._grouped_all(statements, fetch=False)]

    @_translated
    def mark_started(self, execution_id: str, started_at: datetime) -> bool:
        started = clock.to_text(started_at)
        return self._run("mark_started", id=execution_id, started_at=started) == 1

    @_translated
    def release_unstarted(self, ids: Sequence[str], now: datetime) -> int:
        released = 0
        for chunk in _chunks(list(ids), 500):
            params: dict[str, Any] = {f"i{n}": value for n, value in enumerate(chunk)}
            params["now"] = clock.to_text(now)
            sql = SQL["release_unstarted"].format(ids=placeholders("i", len(chunk)))
            released += self._grouped(sql, params, fetch=False)
        return released

    @_translated
    def release_crashed(self, execution_id: str, now: datetime, note: str) -> bool:
        params = {"id": execution_id, "now": clock.to_text(now), "note": note}
        return self._run("release_crashed", **params) == 1

    @_translated
    def renew(self, ids: Iterable[str], now: datetime) -> set[str]:
        alive: set[str] = set()
        for chunk in _chunks(list(ids), 500):
            params: dict[str, Any] = {f"i{n}": value for n, value in enumerate(chunk)}
            params["now"] = clock.to_text(now)
            sql = SQL["renew"].format(ids=placeholders("i", len(chunk)))
            connection = self._conn
            with self._writing:
                alive.update(row[0] for row in connection.execute(sql, params))
        return alive

    @_translated
    def succeed(
        self, execution_id: str, now: datetime, logs: list[Any], keep: bool
    ) -> bool:
        if not keep:
            return self._run("delete_if_running", id=execution_id) == 1
        params = {"id": execution_id, "now": clock.to_text(now), "logs": _json(logs)}
        return self._run("succeed_keep", **params) == 1

    @_translated
    def retry_later(
        self,
        execution_id: str,
        now: datetime,
        error: str,
        scheduled_at: datetime,
        logs: list[Any] | None,
    ) -> bool:
        changed = self._run(
            "retry_later",
            id=execution_id,
            now=clock.to_text(now),
            error=error,
            scheduled_at=clock.to_text(scheduled_at),
            logs=_json(logs),
        )
        return changed == 1

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
            return self._run(f"delete_if_{from_status}", id=execution_id) == 1
        changed = self._run(
            "fail",
            id=execution_id,
            now=clock.to_text(now),
            error=error,
            logs=_json(logs),
            from_status=from_status,
        )
        return changed == 1

    @_translated
    def park(
        self,
        execution_id: str,
        now: datetime,
        scheduled_at: datetime,
        payload: dict[str, Any] | None,
    ) -> bool:
        changed = self._run(
            "park",
            id=execution_id,
            now=clock.to_text(now),
            scheduled_at=clock.to_text(scheduled_at),
            payload=_json(payload),
        )
        return changed == 1

    @_translated
    def promote(self, execution_id: str, now: datetime, due_only: bool) -> bool:
        name = "promote_due" if due_only else "promote"
        return self._run(name, id=execution_id, now=clock.to_text(now)) == 1

    @_translated
    def bump_redispatch(self, execution_id: str, now: datetime) -> bool:
        return (
            self._run("bump_redispatch", id=execution_id, now=clock.to_text(now)) == 1
        )

    @_translated
    def cancel(
        self, execution_id: str, now: datetime, by: str | None, by_name: str | None
    ) -> bool:
        params = {"id": execution_id, "now": clock.to_text(now)}
        return self._run("cancel", by=by, by_name=by_name, **params) == 1

    @_translated
    def cancel_by_key(
        self,
        job_name: str,
        key: str,
        now: datetime,
        by: str | None,
        by_name: str | None,
    ) -> str | None:
        params = {"job_name": job_name, "key": key, "now": clock.to_text(now)}
        connection = self._conn
        with self._writing:
            cursor = connection.execute(
                SQL["cancel_by_key"], {**params, "by": by, "by_name": by_name}
            )
            rows = cursor.fetchall()
        return rows[0][0] if rows else None

    @_translated
    def delete_cancelled(self, execution_id: str) -> bool:
        return self._run("delete_cancelled", id=execution_id) == 1

    @_translated
    def delete_terminal(self, ids: Sequence[str]) -> int:
        return self._delete_in("delete_terminal", ids)

    # sweep and pickup

    @_translated
    def due_scheduled(self, now: datetime, limit: int) -> list[Due]:
        rows = self._rows("due_scheduled", now=clock.to_text(now), limit=limit)
        return [Due(id=row[0], job_name=row[1]) for row in rows]

    @_translated
    def stale_pending(self, cutoff: datetime, limit: int) -> list[Due]:
        rows = self._rows("stale_pending", cutoff=clock.to_text(cutoff), limit=limit)
        return [Due(row[0], row[1], redispatch_count=row[2] or 0) for row in rows]

    @_translated
    def running(self, cutoff: datetime, limit: int) -> list[Due]:
        rows = self._rows("running", cutoff=clock.to_text(cutoff), limit=limit)
        return [
            Due(
                id=row[0],
                job_name=row[1],
                attempt=row[2],
                started_at=clock.from_text(row[3]),
                updated_at=clock.from_text(row[4]),
            )
            for row in rows
        ]

    @_translated
    def ready(self, cutoff: datetime, names: Sequence[str], limit: int) -> list[Due]:
        params: dict[str, Any] = {f"n{i}": name for i, name in enumerate(names)}
        params.update(cutoff=clock.to_text(cutoff), limit=limit)
        sql = SQL["ready"].format(names=placeholders("n", len(names)))
        rows = self._conn.execute(sql, params).fetchall()
        return [Due(id=row[0], job_name=row[1]) for row in rows]

    # trim

    @_translated
    def unregistered_ids(
        self, names: Sequence[str], limit: int, live: bool
    ) -> list[str]:
        params: dict[str, Any] = {f"n{i}": name for i, name in enumerate(names)}
        params.update(limit=limit, live=live)
        sql = SQL["unregistered_ids"].format(names=placeholders("n", len(names)))
        rows = self._conn.execute(sql, params).fetchall()
        return [row[0] for row in rows]

    @_translated
    def delete_ids(self, ids: Sequence[str]) -> int:
        return self._delete_in("delete_ids", ids)

    @_translated
    def terminal_groups(self) -> list[Group]:
        return [
            Group(
                job_name=row[0],
                status=row[1],
                count=int(row[2]),
                oldest=clock.from_text(row[3]),
                newest=clock.from_text(row[4]),
            )
            for row in self._rows("terminal_groups")
        ]

    @_translated
    def ids_beyond(
        self, job_name: str, status: Status, offset: int, limit: int
    ) -> list[str]:
        rows = self._rows(
            "ids_beyond", job_name=job_name, status=status, offset=offset, limit=limit
        )
        return [row[0] for row in rows]

    @_translated
    def ids_completed_before(
        self,
        job_name: str,
        status: Status,
        cutoff: datetime,
        spare: str | None,
        limit: int,
    ) -> list[str]:
        rows = self._rows(
            "ids_completed_before",
            job_name=job_name,
            status=status,
            cutoff=clock.to_text(cutoff),
            spare=spare or "",
            limit=limit,
        )
        return [row[0] for row in rows]

    @_translated
    def newest_id(self, job_name: str, status: Status) -> str | None:
        rows = self._rows("newest_id", job_name=job_name, status=status)
        return rows[0][0] if rows else None

    @_translated
    def live_counts(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in self._rows("live_counts")}

    # admin

    @_translated
    def list(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        where, params = _filters(query)
        total = self._conn.execute(
            f"SELECT COUNT(*) FROM job_executions{where}", params
        ).fetchone()[0]
        sql = (
            f"SELECT {LIST_COLUMNS} FROM job_executions{where} "
            f"ORDER BY {SORTS[query.sort]} LIMIT :size OFFSET :offset"
        )
        params.update(size=query.size, offset=query.page * query.size)
        rows = self._conn.execute(sql, params).fetchall()
        return [_listed(row) for row in rows], int(total)

    def _delete_in(self, name: str, ids: Sequence[str]) -> int:
        deleted = 0
        for chunk in _chunks(list(dict.fromkeys(ids)), 500):
            params = {f"i{n}": value for n, value in enumerate(chunk)}
            sql = SQL[name].format(ids=placeholders("i", len(chunk)))
            connection = self._conn
            with self._writing:
                deleted += connection.execute(sql, params).rowcount
        return deleted


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _payload(row: NewExecution) -> str | None:
    return _json(row.payload) if row.payload_json is None else row.payload_json


def _insert_params(row: NewExecution, now: str) -> dict[str, Any]:
    scheduled = row.scheduled_at
    return {
        "id": row.id,
        "now": now,
        "job_name": row.job_name,
        "key": row.key,
        "status": row.status,
        "max_attempts": row.max_attempts,
        "payload": _payload(row),
        "scheduled_at": None if scheduled is None else clock.to_text(scheduled),
        "triggered_by": row.triggered_by,
        "triggered_by_name": row.triggered_by_name,
    }


_TIMES = ("created_at", "updated_at", "scheduled_at", "started_at", "completed_at")
_JSON = ("payload", "logs")
_NAMES = [name.strip() for name in COLUMNS.split(",")]
_LIST_NAMES = [name.strip() for name in LIST_COLUMNS.split(",")]


def _execution(row: Sequence[Any], names: list[str] = _NAMES) -> Execution:
    values = dict(zip(names, row, strict=True))
    for name in _TIMES:
        values[name] = clock.from_text(values[name])
    for name in _JSON:
        if values.get(name) is not None:
            values[name] = json.loads(values[name])
    return Execution(**values)


def _listed(row: Sequence[Any]) -> Execution:
    return _execution(row, _LIST_NAMES)


def _filters(query: ExecutionQuery) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.job_name is not None:
        # one live status: walk its partial index, not the job's whole history
        live = len(query.statuses) == 1 and query.statuses[0] in LIVE_STATUSES
        clauses.append(("+" if live else "") + "job_name = :job_name")
        params["job_name"] = query.job_name
    if query.statuses:
        clauses.append(status_filter(query.statuses))
    if query.trigger is not None:
        clauses.append(_TRIGGERS[query.trigger])
    if query.started_from is not None:
        clauses.append("started_at >= :started_from")
        params["started_from"] = clock.to_text(query.started_from)
    if query.started_to is not None:
        clauses.append("started_at <= :started_to")
        params["started_to"] = clock.to_text(query.started_to)
    if query.key is not None:
        clauses.append("instr(key, :key) > 0")
        params["key"] = query.key
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_TRIGGERS = {
    "scheduled": "triggered_by = 'system'",
    "manual": "triggered_by IS NOT NULL AND triggered_by <> 'system'",
    "code": "triggered_by IS NULL",
}


def _closed(connection: sqlite3.Connection) -> bool:
    """Whether ``close()`` was called on ``connection``."""
    try:
        return connection.total_changes < 0  # raises once closed
    except sqlite3.ProgrammingError:
        return True
