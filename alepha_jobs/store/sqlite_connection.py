"""Connections to the SQLite outbox: one per thread, and the group-commit writer.

:class:`SqliteConnections` is the base of
:class:`~alepha_jobs.store.sqlite.SqliteStore`: it parses the URL, opens (and
migrates) the file, lends each thread its own connection, and commits the
writing statements of concurrent threads together.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigurationError, StoreError
from .sqlite_schema import migrate

BUSY_TIMEOUT_MS = 30_000
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING
SYNCHRONOUS = ("NORMAL", "FULL")
_F = TypeVar("_F", bound=Callable[..., Any])


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a file path.

    :raises ConfigurationError: not an SQLite URL, or an in-memory database.
    """
    if not url.startswith("sqlite:///"):
        raise ConfigurationError(
            f"{url!r} is not an SQLite URL; write sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    raw = url[len("sqlite:///") :].split("?", 1)[0]
    if raw in ("", ":memory:"):
        raise ConfigurationError(
            f"{url!r}: an in-memory database cannot be shared between the threads "
            "and processes that run jobs; name a file, e.g. sqlite:///jobs.db"
        )
    return Path(raw)


def synchronous_from_url(url: str) -> str:
    """The ``synchronous`` setting named by ``?synchronous=`` (default NORMAL).

    NORMAL survives a crash of the process; FULL also survives a power cut, at
    the cost of one fsync per commit.

    :raises ConfigurationError: an unknown value or parameter.
    """
    query = url.split("?", 1)[1] if "?" in url else ""
    level = "NORMAL"
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name != "synchronous":
            raise ConfigurationError(
                f"unknown parameter {name!r} in {url!r}; the only SQLite URL "
                "parameter is synchronous=normal|full"
            )
        level = value.upper()
    if level not in SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous={level.lower()!r} in {url!r} is not supported; use "
            "synchronous=normal (survives a process crash, the default) or "
            "synchronous=full (also survives a power cut, slower commits)"
        )
    return level


def _translated(method: _F) -> _F:
    """Turn any sqlite3 error raised by ``method`` into a :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self: SqliteConnections, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise self.translate(error) from error

    return wrapper  # type: ignore[return-value]


class SqliteConnections:
    """One SQLite file: a connection per thread, writes queued for group commit.

    :param url: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``,
        optionally with ``?synchronous=normal|full``.
    :raises ConfigurationError: the URL is malformed or SQLite is too old.
    :raises StoreError: the file cannot be opened or migrated.
    """

    def __init__(self, url: str) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigurationError(
                f"SQLite {sqlite3.sqlite_version} is too old: alepha_jobs needs "
                "3.35 or newer (for RETURNING); use a Python built against a newer "
                "SQLite"
            )
        self.url = url
        self.path = path_from_url(url)
        self.synchronous = synchronous_from_url(url)
        self._local = threading.local()
        # (owning thread, connection): a connection outlives a short-lived thread
        # (a cron tick, a request) only until the next thread connects.
        self._connections: list[tuple[weakref.ref[threading.Thread], Any]] = []
        self._lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy
        # handler, which sleeps whole milliseconds between retries.
        self._writing = threading.RLock()
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        try:
            migrate(self.path, self._connect)
        except sqlite3.Error as error:
            raise self.translate(error) from error

    def translate(self, error: sqlite3.Error) -> StoreError:
        """The one place a driver error becomes a :class:`StoreError`."""
        text = str(error)
        if "not a database" in text:
            hint = "the file exists but is not an SQLite database; point at another"
        elif "unable to open" in text:
            hint = "check that the directory exists and is writable"
        elif "locked" in text or "busy" in text:
            hint = f"another process held the write lock over {BUSY_TIMEOUT_MS} ms"
        else:
            hint = type(error).__name__
        return StoreError(f"SQLite database {str(self.path)!r}: {text} ({hint})")

    # connections

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,  # only its thread uses it; close() may not
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        return connection

    @property
    def _conn(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if connection is None:
            connection = self._connect()
            self._local.conn = connection
            owner = weakref.ref(threading.current_thread())
            with self._lock:
                orphans = [c for t, c in self._connections if not _alive(t)]
                self._connections = [(t, c) for t, c in self._connections if _alive(t)]
                self._connections.append((owner, connection))
            for orphan in orphans:
                orphan.close()
        return connection

    def close(self) -> None:
        """Close this thread's connection and those of finished threads.

        A connection still owned by a live thread is only forgotten: closing it
        under a statement in flight would crash the interpreter, and it closes
        itself when its thread ends.
        """
        current = threading.current_thread()
        with self._lock:
            connections, self._connections = self._connections, []
        for owner, connection in connections:
            thread = owner()
            if thread is None or thread is current or not thread.is_alive():
                connection.close()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        connection = self._conn
        with self._writing:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def connection(self) -> sqlite3.Connection:
        """This thread's autocommit connection, for companions on the same file.

        sqlite3 errors reach the caller untranslated; see :meth:`translate`.
        """
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside a ``BEGIN IMMEDIATE`` transaction.

        Commits on exit, rolls back on an exception. sqlite3 errors reach the
        caller untranslated; see :meth:`translate`.
        """
        with self._write() as connection:
            yield connection

    def _grouped(self, sql: str, params: dict[str, Any], fetch: bool) -> Any:
        return self._grouped_all([(sql, params)], fetch)[0]

    def _grouped_all(
        self, statements: Sequence[tuple[str, dict[str, Any]]], fetch: bool
    ) -> list[Any]:
        """Run one writing statement and commit it, together with the statements
        other threads of this process queued meanwhile (group commit).

        Each caller still returns only once its own statements committed, with
        the row count (or rows, with ``fetch``) of each, or the first error.
        """
        connection = self._conn
        if connection.in_transaction:  # inside transaction(): no one else's work
            with self._writing:
                cursors = [connection.execute(s, p) for s, p in statements]
                return [c.fetchall() if fetch else c.rowcount for c in cursors]
        mine = [_Pending(sql, params, fetch) for sql, params in statements]
        with self._queue_lock:
            self._queue.extend(mine)
        with self._writing:
            if not mine[-1].done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                _flush(connection, batch)
        for pending in mine:
            if pending.error is not None:
                raise pending.error
        return [pending.result for pending in mine]


class _Pending:
    """A writing statement waiting for the next group commit."""

    __slots__ = ("sql", "params", "fetch", "done", "result", "error")

    def __init__(self, sql: str, params: dict[str, Any], fetch: bool) -> None:
        self.sql = sql
        self.params = params
        self.fetch = fetch
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = sqlite3.OperationalError(
            "interrupted before its commit"
        )


def _flush(connection: sqlite3.Connection, batch: list[_Pending]) -> None:
    """Run ``batch`` in one ``BEGIN IMMEDIATE`` transaction and commit it.

    A statement that fails alone (a constraint) keeps its error; the others
    still commit. If the commit fails, every statement gets that error.
    """
    executed: list[_Pending] = []
    try:
        connection.execute("BEGIN IMMEDIATE")
        for pending in batch:
            try:
                cursor = connection.execute(pending.sql, pending.params)
                rows = cursor.fetchall() if pending.fetch else cursor.rowcount
            except sqlite3.Error as error:
                pending.error = error
                continue
            pending.result = rows
            executed.append(pending)
        connection.execute("COMMIT")
    except BaseException as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        own = isinstance(error, sqlite3.Error)
        for pending in batch:
            pending.result = None
            if own:
                pending.error = error
        if not own:
            raise
    else:
        for pending in executed:
            pending.error = None
    finally:
        for pending in batch:
            pending.done = True


def _alive(thread: weakref.ref[threading.Thread]) -> bool:
    owner = thread()
    return owner is not None and owner.is_alive()
