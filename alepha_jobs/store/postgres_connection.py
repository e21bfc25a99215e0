"""Connections to the Postgres outbox: URL, pool, error translation, migration.

:class:`PostgresConnections` is the base of
:class:`~alepha_jobs.store.postgres.PostgresStore`; it owns everything between a
statement and the server, so the store holds only the transitions.

Reconnection. The pool checks each connection before lending it and replaces a
broken one. The check costs no round trip while the connection's socket is quiet:
an idle connection has nothing to read unless the server spoke first, which it
does when it terminates the backend or shuts down (an error message, then end of
file); only then does the check send an empty query. A statement that fails
because its connection was lost anyway (the server restarted, or its backend was
terminated, while the connection was lent) runs once more on a fresh connection.
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
import select
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, SchemaVersionError, StoreError
from .postgres_queries import MIGRATIONS

# The store's logger, so that its events keep the name they always had.
logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
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
    def wrapper(self: PostgresConnections, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.driver_errors as error:
            raise self.translate(error) from error

    return wrapper  # type: ignore[return-value]


class PostgresConnections:
    """A psycopg pool on the outbox database, which it migrates on opening.

    :param url: as for :class:`~alepha_jobs.store.postgres.PostgresStore`.
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
            check=self._check,
            name=APPLICATION_NAME,
            timeout=self.pool_timeout,
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except self._db.psycopg.Error as error:
            pool.close()
            raise self.translate(error) from error
        return pool

    def _check(self, connection: Any) -> None:
        """The pool's check before it lends ``connection``: a probe round trip
        only if the server sent something since the connection was returned.

        :raises psycopg.Error: the connection is dead; the pool discards it.
        """
        if not _server_spoke(connection):
            return
        try:
            self._db.pool.ConnectionPool.check_connection(connection)
        except self._db.psycopg.Error:
            # its idle siblings were most likely killed with it: replace them
            # now rather than one by one, each after a back-off of the pool's
            self._pool.check()
            raise

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


_SHUTDOWN = ("57P01", "57P02", "57P03")  # admin/crash shutdown, cannot connect now


def _server_spoke(connection: Any) -> bool:
    """Whether an idle connection has something to read (or is unusable), without
    a round trip: a terminated backend leaves an error and end of file behind."""
    try:
        descriptor = connection.fileno()
        if _POLL is None:
            return bool(select.select([descriptor], [], [], 0)[0])
        poller = _POLL()
        poller.register(descriptor, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # closed, or a descriptor select cannot watch
        return True


_POLL = getattr(select, "poll", None)  # absent on Windows


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
