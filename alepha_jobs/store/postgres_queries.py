"""The Postgres outbox SQL: the shared statements of :mod:`.queries` in psycopg's
``%(name)s`` style, plus the ones Postgres writes differently, each by name.

The sweep and pickup selects take ``FOR UPDATE SKIP LOCKED``: a row that another
session is moving right now is skipped rather than waited for, and the guarded
update that follows still decides who wins. Id and name lists are one array
parameter (``= ANY``), so they need no placeholder expansion.
"""

from __future__ import annotations

import functools
import re

from .queries import COLUMNS, SQL
from .sqlite_schema import V1_INDEXES, version_2_statements

_T = "job_executions"
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

PG_SQL: dict[str, str] = {
    # on a retry after a lost connection: the first attempt may have committed
    "insert_again": f"""
        INSERT INTO {_T} (id, created_at, updated_at, job_name, key, status,
            max_attempts, payload, scheduled_at, triggered_by, triggered_by_name)
        VALUES (%(id)s, %(now)s, %(now)s, %(job_name)s, %(key)s, %(status)s,
            %(max_attempts)s, %(payload)s, %(scheduled_at)s, %(triggered_by)s,
            %(triggered_by_name)s)
        ON CONFLICT (id) DO NOTHING""",
    "insert_terminal_again": f"""
        INSERT INTO {_T} (id, created_at, updated_at, job_name, status, attempt,
            max_attempts, started_at, completed_at, error, logs, triggered_by,
            triggered_by_name)
        VALUES (%(id)s, %(completed_at)s, %(completed_at)s, %(job_name)s,
            %(status)s, 1, 1, %(started_at)s, %(completed_at)s, %(error)s,
            %(logs)s, %(triggered_by)s, %(triggered_by_name)s)
        ON CONFLICT (id) DO NOTHING""",
    "delete_running_many": f"""
        DELETE FROM {_T} WHERE id = ANY(%(ids)s) AND status = 'running'
        RETURNING id""",
    "renew": f"""
        UPDATE {_T} SET status = 'running', updated_at = %(now)s
        WHERE status = 'running' AND id = ANY(%(ids)s)
        RETURNING id""",
    "delete_terminal": f"""
        DELETE FROM {_T}
        WHERE id = ANY(%(ids)s) AND status IN ('ok', 'error', 'cancelled')""",
    "delete_ids": f"DELETE FROM {_T} WHERE id = ANY(%(ids)s)",
    "due_scheduled": f"""
        SELECT id, job_name FROM {_T}
        WHERE status = 'scheduled' AND scheduled_at <= %(now)s
        ORDER BY scheduled_at LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED""",
    "stale_pending": f"""
        SELECT id, job_name, redispatch_count FROM {_T}
        WHERE status = 'pending' AND updated_at <= %(cutoff)s
        ORDER BY updated_at LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED""",
    "running": f"""
        SELECT id, job_name, attempt, started_at, updated_at FROM {_T}
        WHERE status = 'running' AND updated_at <= %(cutoff)s
        ORDER BY updated_at LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED""",
    # one SELECT instead of SQLite's UNION ALL: FOR UPDATE refuses a UNION
    # Each branch walks its partial (time) index and stops at the limit, so a
    # backlog of any size costs the same.
    "ready": f"""
        WITH pending AS (
            SELECT id, job_name, updated_at AS since FROM {_T}
            WHERE status = 'pending' AND updated_at <= %(cutoff)s
                AND job_name = ANY(%(names)s)
            ORDER BY updated_at LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT id, job_name, scheduled_at AS since FROM {_T}
            WHERE status = 'scheduled' AND scheduled_at <= %(cutoff)s
                AND job_name = ANY(%(names)s)
            ORDER BY scheduled_at LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        SELECT id, job_name FROM (
            SELECT * FROM pending UNION ALL SELECT * FROM due
        ) AS ready ORDER BY since LIMIT %(limit)s""",
    "unregistered_ids": f"""
        SELECT id FROM {_T} WHERE job_name <> ALL(%(names)s)
            AND (%(live)s OR status IN ('ok', 'error', 'cancelled'))
        LIMIT %(limit)s""",
    "insert_in_keyed": """
        INSERT INTO {table} (id, created_at, updated_at, job_name, key, status,
            max_attempts, payload, scheduled_at, triggered_by, triggered_by_name)
        VALUES (%(id)s, %(now)s, %(now)s, %(job_name)s, %(key)s, %(status)s,
            %(max_attempts)s, %(payload)s, %(scheduled_at)s, %(triggered_by)s,
            %(triggered_by_name)s)
        ON CONFLICT (job_name, key) WHERE key IS NOT NULL DO NOTHING
        RETURNING id""",
    "insert_in_winner": """
        SELECT id FROM {table} WHERE job_name = %(job_name)s AND key = %(key)s""",
    "list_count": f"SELECT COUNT(*) FROM {_T}{{where}}",
    "list_page": f"""
        SELECT {{columns}} FROM {_T}{{where}}
        ORDER BY {{order}} LIMIT %(size)s OFFSET %(offset)s""",
}

# Schema migrations, each one transaction under the advisory lock; ``{schema}``
# is the quoted schema name (with its trailing dot) or empty.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        f"""
        CREATE TABLE IF NOT EXISTS {{schema}}{_T} (
            id text PRIMARY KEY,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            job_name text NOT NULL,
            key text,
            status text NOT NULL DEFAULT 'pending' CHECK (status IN
                ('pending', 'scheduled', 'running', 'ok', 'error', 'cancelled')),
            attempt integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL DEFAULT 1,
            redispatch_count integer NOT NULL DEFAULT 0,
            payload jsonb,
            scheduled_at timestamptz,
            started_at timestamptz,
            completed_at timestamptz,
            error text,
            logs jsonb,
            triggered_by text,
            triggered_by_name text,
            cancelled_by text,
            cancelled_by_name text
        )""",
        """
        CREATE TABLE IF NOT EXISTS {schema}job_locks (
            key text PRIMARY KEY,
            value text NOT NULL,
            expires_at timestamptz
        )""",
        *(index.create("{schema}") for index in V1_INDEXES),
    ],
    # the partial indexes of sqlite_schema.INDEXES, replacing SPEC §3.2's list
    2: version_2_statements("{schema}"),
}

LOCK_SQL: dict[str, str] = {
    "set": """
        INSERT INTO job_locks (key, value, expires_at)
        VALUES (%(key)s, %(value)s, %(expires_at)s)
        ON CONFLICT (key) DO UPDATE
        SET value = excluded.value, expires_at = excluded.expires_at""",
    # replaces only an expired row; a live row is locked and keeps its value
    "set_nx": """
        INSERT INTO job_locks (key, value, expires_at)
        VALUES (%(key)s, %(value)s, %(expires_at)s)
        ON CONFLICT (key) DO UPDATE
        SET value = excluded.value, expires_at = excluded.expires_at
        WHERE job_locks.expires_at IS NOT NULL AND job_locks.expires_at <= %(now)s
        RETURNING value""",
    "get": """
        SELECT value FROM job_locks
        WHERE key = %(key)s AND (expires_at IS NULL OR expires_at > %(now)s)""",
    "delete": "DELETE FROM job_locks WHERE key = ANY(%(keys)s)",
    # prefix compare with left(), not LIKE: owner ids may contain % or _
    "delete_if_owner": """
        DELETE FROM job_locks
        WHERE key = %(key)s AND (value = %(owner)s::text
            OR left(value, length(%(owner)s::text) + 1) = %(owner)s::text || ',')
        RETURNING expires_at""",
    "prune": """
        DELETE FROM job_locks
        WHERE expires_at IS NOT NULL AND expires_at <= %(now)s""",
}


# Direct-mode batches (see the same names in :mod:`.queries`).
PG_SQL.update(
    {
        "claim_batch": f"""
        UPDATE {_T} SET status = 'running', attempt = attempt + 1,
            started_at = NULL, updated_at = %(now)s
        WHERE id = ANY(%(ids)s) AND (status = 'pending'
            OR (status = 'scheduled' AND scheduled_at <= %(now)s))
        RETURNING {COLUMNS}""",
        "succeed_batch_keep": f"""
        UPDATE {_T} AS t SET status = 'ok', completed_at = %(now)s,
            updated_at = %(now)s, key = NULL, logs = v.logs,
            started_at = COALESCE(t.started_at, v.started_at)
        FROM unnest(%(ids)s::text[], %(logs)s::jsonb[], %(started)s::timestamptz[])
            AS v(id, logs, started_at)
        WHERE t.id = v.id AND t.status = 'running'
        RETURNING t.id""",
        "release_unstarted": f"""
        UPDATE {_T} SET status = 'pending', attempt = GREATEST(attempt - 1, 0),
            updated_at = %(now)s
        WHERE id = ANY(%(ids)s) AND status = 'running' AND started_at IS NULL""",
        "release_crashed": f"""
        UPDATE {_T} SET status = 'pending', attempt = GREATEST(attempt - 1, 0),
            error = %(note)s, updated_at = %(now)s
        WHERE id = %(id)s AND status = 'running' AND started_at IS NULL
            AND error IS DISTINCT FROM %(note)s""",
    }
)


@functools.cache
def to_pyformat(statement: str) -> str:
    """``:name`` parameters to psycopg's ``%(name)s``; a literal ``%`` doubles."""
    return _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))


def statement(name: str) -> str:
    """The Postgres text of the statement ``name``."""
    if name in PG_SQL:
        return PG_SQL[name]
    return to_pyformat(SQL[name])


__all__ = ["COLUMNS", "LOCK_SQL", "MIGRATIONS", "PG_SQL"]
