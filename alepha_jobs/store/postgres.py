"""The Postgres outbox (extra ``postgres``): psycopg 3 and a psycopg_pool pool.

Same contract and guards as :class:`~alepha_jobs.store.sqlite.SqliteStore`, for
processes on several hosts. Connections are autocommit; a method that needs two
statements opens an explicit transaction. The URL may carry ``schema=NAME`` (the
tables live in that schema, created if missing), ``pool_max_size=N`` and
``pool_timeout=SECONDS``; every other parameter goes to libpq.

Reconnection. The pool checks each connection before lending it and replaces a
broken one. A statement that fails because its connection was lost (the server
restarted, or its backend was terminated) runs once more on a fresh connection.
That is safe for every statement here, because each one is guarded: a transition
that did commit before the connection dropped finds its guard no longer matching
and changes nothing; a select is a select; an insert retried after an unseen
commit skips the id it already wrote (``ON CONFLICT (id) DO NOTHING``). What a
retry cannot recover is the answer of a transition whose commit was lost on the
wire: the caller then sees "guard did not match". For a claim that leaves the
row ``running`` with nobody renewing its lease, and the sweep's recover-crashed
phase takes it over (at-least-once, SPEC §5.2). A second failure raises
:class:`~alepha_jobs.errors.StoreError`; background threads log it and try again
at their next tick.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import clock
from ..errors import (
    ConfigurationError,
    InvalidArgumentError,
    SchemaVersionError,
    StoreError,
)
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
from .postgres_queries import MIGRATIONS, PG_SQL, index_statements, statement
from .queries import COLUMNS, LIST_COLUMNS, SORTS
from .sqlite import _TRIGGERS

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONNECT_TIMEOUT = 5  # seconds, for the first connection and the pool's opening
POOL_TIMEOUT = 30.0  # seconds a statement waits for a free or new connection
POOL_MAX_SIZE = 20
APPLICATION_NAME = "alepha-jobs"
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])
_OWN_PARAMS = ("schema", "pool_max_size", "pool_timeout")
_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*")


def _drivers() -> SimpleNamespace:
    """psycopg and psycopg_pool, imported on first use.

    :raises ConfigurationError: they are not installed.
    """
    try:
        psycopg = importlib.import_module("psycopg")
        pool = importlib.import_module("psycopg_pool")
        importlib.import_module("psycopg.conninfo")
        json = importlib.import_module("psycopg.types.json")
        sql = importlib.import_module("psycopg.sql")
    except ImportError as error:
        raise ConfigurationError(
            "the Postgres outbox needs psycopg 3 and psycopg_pool: "
            "pip install 'alepha-jobs[postgres]'"
        ) from error
    return SimpleNamespace(psycopg=psycopg, pool=pool, Jsonb=json.Jsonb, sql=sql)


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Remove this library's own parameters from the query; return both parts."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {name: value for name, value in query if name in _OWN_PARAMS}
    rest = [(name, value) for name, value in query if name not in _OWN_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(rest))), own


def masked(url: str) -> str:
    """``url`` with its password, in the user part or the query, as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = _PASSWORD.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return f"{parts.scheme}://{netloc}{parts.path}{'?' if query else ''}{query}"


def _translated(method: _F) -> _F:
    """Turn any psycopg or pool error raised by ``method`` into a StoreError."""

    @functools.wraps(method)
    def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.driver_errors as error:
            raise self.translate(error) from error

    return wrapper  # type: ignore[return-value]


class PostgresStore(Store):
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

    def __init__(self, url: str) -> None:
        self.url = masked(url)  # for messages and logs: no password
        self._db = _drivers()
        self.driver_errors: tuple[type[BaseException], ...] = (self._db.psycopg.Error,)
        conninfo, own = _split_url(url)
        self.schema: str | None = own.get("schema") or None
        pool_size = _pool_size(self.url, own.get("pool_max_size"))
        self.pool_timeout = _pool_timeout(self.url, own.get("pool_timeout"))
        self._where, self._kwargs = self._describe(conninfo)
        self._conninfo = conninfo
        self._closed = threading.Event()
        self.database = ""
        self.current_schema = ""
        self._connect_first()
        self._pool = self._open_pool(pool_size)

    def _describe(self, conninfo: str) -> tuple[str, dict[str, Any]]:
        try:
            params = self._db.psycopg.conninfo.conninfo_to_dict(conninfo)
        except self._db.psycopg.Error as error:
            raise ConfigurationError(
                f"malformed Postgres URL: {_first_line(error)}; write "
                "postgresql://user:password@host:port/database"
            ) from None
        host = params.get("host") or params.get("hostaddr") or "localhost"
        where = f"{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"
        kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in params:
            kwargs["application_name"] = APPLICATION_NAME
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        return where, kwargs

    def translate(self, error: BaseException) -> StoreError:
        """The one place a driver error becomes a :class:`StoreError`."""
        lost = isinstance(error, self._db.psycopg.OperationalError) and self._lost(
            error
        )
        reason = _explain(error, lost, self.pool_timeout)
        return StoreError(f"Postgres at {self._where}: {reason}")

    # connections

    def _connect_first(self) -> None:
        """Connect once outside the pool, for a precise error, and migrate."""
        psycopg = self._db.psycopg
        try:
            connection = psycopg.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as error:
            raise self.translate(error) from error
        try:
            with connection:
                self._configure(connection)
                self._migrate(connection)
                row = connection.execute(
                    "SELECT current_database(), current_schema()"
                ).fetchone()
                self.database, self.current_schema = row[0], row[1] or ""
        except psycopg.Error as error:
            raise self.translate(error) from error

    def _open_pool(self, max_size: int) -> Any:
        pool_class = self._db.pool.ConnectionPool
        pool = pool_class(
            self._conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=max_size,
            open=False,
            configure=self._configure,
            check=pool_class.check_connection,
            name=APPLICATION_NAME,
            timeout=self.pool_timeout,
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except self._db.psycopg.Error as error:
            pool.close()
            raise self.translate(error) from error
        return pool

    def _configure(self, connection: Any) -> None:
        sql = self._db.sql
        statement = sql.SQL("SET TIME ZONE 'UTC'")
        if self.schema is not None:
            path = sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
            statement = sql.SQL("; ").join([statement, path])
        connection.execute(statement)

    def close(self) -> None:
        self._closed.set()
        self._pool.close(timeout=5)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Lend a pooled autocommit connection, for companions on the same
        database. psycopg errors reach the caller untranslated; see
        :meth:`translate`."""
        with self._pool.connection() as connection:
            yield connection

    def run(self, work: Callable[[Any, bool], _T]) -> _T:
        """Call ``work(connection, retried)`` on a pooled connection, and once
        more on a fresh one if the connection was lost meanwhile.

        ``work`` must be safe to repeat after an unseen commit (see the module
        docstring). psycopg errors reach the caller untranslated.
        """
        try:
            with self._pool.connection() as connection:
                return work(connection, False)
        except self._db.psycopg.OperationalError as error:
            if self._closed.is_set() or not self._lost(error):
                raise
            logger.warning(
                "connection to Postgres at %s lost (%s); retrying on a fresh one",
                self._where,
                _first_line(error),
                extra={"event": "store.reconnect"},
            )
        with self._pool.connection() as connection:
            return work(connection, True)

    def _lost(self, error: BaseException) -> bool:
        """Whether ``error`` means the connection died, not the statement."""
        if isinstance(error, self._db.pool.PoolTimeout):
            return False
        state = getattr(error, "sqlstate", None)
        return state is None or state.startswith("08") or state in _SHUTDOWN

    def _execute(self, name: str, params: dict[str, Any]) -> int:
        def work(connection: Any, retried: bool) -> int:
            return int(connection.execute(statement(name), params).rowcount)

        return self.run(work)

    def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        def work(connection: Any, retried: bool) -> list[tuple[Any, ...]]:
            return list(connection.execute(statement(name), params).fetchall())

        return self.run(work)

    # schema

    def _migrate(self, connection: Any) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` under an advisory lock, so
        processes that start together migrate once."""
        prefix = self._prefix(connection)
        if self._version(connection, prefix) == SCHEMA_VERSION:
            return
        with connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"alepha_jobs.migrate:{self.schema or ''}",),
            )
            if self.schema is not None:
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {prefix[:-1]}")
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {prefix}alepha_jobs_schema "
                "(version integer PRIMARY KEY)"
            )
            version = self._version(connection, prefix)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for ddl in MIGRATIONS[target]:
                    connection.execute(ddl.format(schema=prefix))
                if target == 1:
                    for ddl in index_statements(prefix):
                        connection.execute(ddl)
                connection.execute(
                    f"INSERT INTO {prefix}alepha_jobs_schema (version) VALUES (%s)",
                    (target,),
                )
                logger.info(
                    "outbox schema at %s migrated to version %d",
                    self._where,
                    target,
                    extra={"event": "schema.migrated", "version": target},
                )

    def _prefix(self, connection: Any) -> str:
        if self.schema is None:
            return ""
        return self._db.sql.Identifier(self.schema).as_string(connection) + "."

    def _version(self, connection: Any, prefix: str) -> int:
        table = f"{prefix}alepha_jobs_schema"
        exists = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if exists[0] is None:
            return 0
        row = connection.execute(f"SELECT max(version) FROM {table}").fetchone()
        version = int(row[0] or 0)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"Postgres at {self._where}: the outbox schema has version "
                f"{version}, newer than the {SCHEMA_VERSION} this alepha_jobs "
                "understands; upgrade alepha_jobs or point at another schema"
            )
        return version

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
    def claim_many(self, ids: Sequence[str], now: datetime) -> list[Execution]:
        rows = self._rows("claim_many", {"ids": list(ids), "now": _ms(now)})
        return [_execution(row) for row in rows]

    @_translated
    def succeed_many(
        self, outcomes: Sequence[tuple[str, list[Any], bool]], now: datetime
    ) -> list[bool]:
        kept = [(i, logs) for i, logs, keep in outcomes if keep]
        dropped = [i for i, _, keep in outcomes if not keep]
        keep_params = {
            "ids": [i for i, _ in kept],
            "logs": [self._json(_scrub(logs or [])) for _, logs in kept],
            "now": _ms(now),
        }

        def work(connection: Any, retried: bool) -> set[str]:
            done: set[str] = set()
            with connection.transaction():
                if kept:
                    cursor = connection.execute(
                        statement("succeed_keep_many"), keep_params
                    )
                    done.update(row[0] for row in cursor.fetchall())
                if dropped:
                    cursor = connection.execute(
                        statement("delete_running_many"), {"ids": dropped}
                    )
                    done.update(row[0] for row in cursor.fetchall())
            return done

        done = self.run(work)
        return [execution_id in done for execution_id, _, _ in outcomes]

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

    def _insert_params(self, row: NewExecution, now: datetime) -> dict[str, Any]:
        scheduled = row.scheduled_at
        return {
            "id": row.id,
            "now": _ms(now),
            "job_name": row.job_name,
            "key": row.key,
            "status": row.status,
            "max_attempts": row.max_attempts,
            "payload": self._json(row.payload),
            "scheduled_at": None if scheduled is None else _ms(scheduled),
            "triggered_by": row.triggered_by,
            "triggered_by_name": row.triggered_by_name,
        }


_SHUTDOWN = ("57P01", "57P02", "57P03")  # admin/crash shutdown, cannot connect now
_TIMES = ("created_at", "updated_at", "scheduled_at", "started_at", "completed_at")
_NAMES = [name.strip() for name in COLUMNS.split(",")]
_LIST_NAMES = [name.strip() for name in LIST_COLUMNS.split(",")]


def _pool_size(url: str, raw: str | None) -> int:
    if raw is None:
        return POOL_MAX_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(
            f"pool_max_size={raw!r} in {url!r} must be a positive integer"
        )
    return int(raw)


def _pool_timeout(url: str, raw: str | None) -> float:
    if raw is None:
        return POOL_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(
            f"pool_timeout={raw!r} in {url!r} must be a positive number of seconds"
        )
    return seconds


def _ms(moment: datetime) -> datetime:
    """An aware UTC datetime truncated to milliseconds, as SQLite stores it."""
    utc = moment.astimezone(clock.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


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
        clauses.append("status = ANY(%(statuses)s)")
        params["statuses"] = list(query.statuses)
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


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


def _explain(error: BaseException, lost: bool, pool_timeout: float) -> str:
    """A one-line reason and what to do about it, without the driver's noise."""
    text = _first_line(error) or type(error).__name__
    reason = text.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    lower = reason.lower()
    if type(error).__name__ == "PoolTimeout":
        hint = (
            f"no connection became available within {pool_timeout:g} s; the "
            "server may be down or restarting, or every connection is busy"
        )
    elif "connection refused" in lower:
        hint = "is the server running and accepting TCP/IP connections there?"
    elif "password authentication failed" in lower or (
        "role" in lower and "does not exist" in lower
    ):
        hint = "check the user name and password in the URL"
    elif "database" in lower and "does not exist" in lower:
        hint = "create the database or fix its name in the URL"
    elif "timeout expired" in lower or "timed out" in lower:
        hint = f"the server did not answer within {CONNECT_TIMEOUT} s"
    elif "failed to resolve host" in lower or "could not translate host" in lower:
        hint = "check the host name in the URL"
    elif "nul" in lower and "0x00" in lower:
        hint = "Postgres text cannot hold U+0000; remove it from the value"
    elif lost:
        hint = "the connection was lost; the server may have restarted"
    else:
        hint = f"{type(error).__name__}, SQLSTATE {getattr(error, 'sqlstate', '')}"
    return f"{reason} ({hint})"
