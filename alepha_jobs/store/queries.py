"""The outbox SQL, each statement addressed by name, with ``:name`` parameters.

Every UPDATE sets ``updated_at`` explicitly (SPEC §0.3) and carries its guard in
``WHERE``; the caller reads the row count or ``RETURNING`` to learn who won.
Reads name their status as a literal, as the partial index they walk does
(schema version 2, :mod:`.sqlite_schema`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgumentError
from .base import STATUSES, TERMINAL_STATUSES

_T = "job_executions"
# Repeated literally wherever a query is to use the partial index that carries
# it (sqlite_schema.INDEXES): a bound ``status = :status`` alone cannot.
TERMINAL = "status IN ('ok', 'error', 'cancelled')"

COLUMNS = (
    "id, created_at, updated_at, job_name, key, status, attempt, max_attempts, "
    "redispatch_count, payload, scheduled_at, started_at, completed_at, error, logs, "
    "triggered_by, triggered_by_name, cancelled_by, cancelled_by_name"
)
LIST_COLUMNS = COLUMNS.replace("payload, ", "").replace(", logs", "")

SQL: dict[str, str] = {
    "insert": f"""
        INSERT INTO {_T} (id, created_at, updated_at, job_name, key, status,
            max_attempts, payload, scheduled_at, triggered_by, triggered_by_name)
        VALUES (:id, :now, :now, :job_name, :key, :status, :max_attempts, :payload,
            :scheduled_at, :triggered_by, :triggered_by_name)""",
    "insert_keyed": f"""
        INSERT INTO {_T} (id, created_at, updated_at, job_name, key, status,
            max_attempts, payload, scheduled_at, triggered_by, triggered_by_name)
        VALUES (:id, :now, :now, :job_name, :key, :status, :max_attempts, :payload,
            :scheduled_at, :triggered_by, :triggered_by_name)
        ON CONFLICT (job_name, key) WHERE key IS NOT NULL DO NOTHING
        RETURNING id""",
    "insert_terminal": f"""
        INSERT INTO {_T} (id, created_at, updated_at, job_name, status, attempt,
            max_attempts, started_at, completed_at, error, logs, triggered_by,
            triggered_by_name)
        VALUES (:id, :completed_at, :completed_at, :job_name, :status, 1, 1,
            :started_at, :completed_at, :error, :logs, :triggered_by,
            :triggered_by_name)""",
    "get": f"SELECT {COLUMNS} FROM {_T} WHERE id = :id",
    "get_by_key": f"SELECT id FROM {_T} WHERE job_name = :job_name AND key = :key",
    "claim": f"""
        UPDATE {_T} SET status = 'running', attempt = attempt + 1,
            started_at = :now, updated_at = :now
        WHERE id = :id AND (status = 'pending'
            OR (status = 'scheduled' AND scheduled_at <= :now))
        RETURNING {COLUMNS}""",
    "renew": f"""
        UPDATE {_T} SET status = 'running', updated_at = :now
        WHERE status = 'running' AND id IN ({{ids}})
        RETURNING id""",
    "succeed_keep": f"""
        UPDATE {_T} SET status = 'ok', completed_at = :now, updated_at = :now,
            key = NULL, logs = :logs
        WHERE id = :id AND status = 'running'""",
    "delete_if_running": f"DELETE FROM {_T} WHERE id = :id AND status = 'running'",
    "delete_if_pending": f"DELETE FROM {_T} WHERE id = :id AND status = 'pending'",
    "retry_later": f"""
        UPDATE {_T} SET status = 'scheduled', error = :error,
            scheduled_at = :scheduled_at, logs = :logs, updated_at = :now
        WHERE id = :id AND status = 'running'""",
    "fail": f"""
        UPDATE {_T} SET status = 'error', error = :error, completed_at = :now,
            key = NULL, logs = COALESCE(:logs, logs), updated_at = :now
        WHERE id = :id AND status = :from_status""",
    "park": f"""
        UPDATE {_T} SET status = 'scheduled', scheduled_at = :scheduled_at,
            payload = :payload, attempt = 0, redispatch_count = 0, updated_at = :now
        WHERE id = :id AND status = 'running'""",
    "promote_due": f"""
        UPDATE {_T} SET status = 'pending', updated_at = :now
        WHERE id = :id AND status = 'scheduled' AND scheduled_at <= :now""",
    "promote": f"""
        UPDATE {_T} SET status = 'pending', updated_at = :now
        WHERE id = :id AND status = 'scheduled'""",
    "bump_redispatch": f"""
        UPDATE {_T} SET redispatch_count = redispatch_count + 1, updated_at = :now
        WHERE id = :id AND status = 'pending'""",
    "cancel": f"""
        UPDATE {_T} SET status = 'cancelled', key = NULL, cancelled_by = :by,
            cancelled_by_name = :by_name, completed_at = :now, updated_at = :now
        WHERE id = :id AND status IN ('pending', 'running', 'scheduled')""",
    "cancel_by_key": f"""
        UPDATE {_T} SET status = 'cancelled', key = NULL, cancelled_by = :by,
            cancelled_by_name = :by_name, completed_at = :now, updated_at = :now
        WHERE job_name = :job_name AND key = :key
            AND status IN ('pending', 'scheduled')
        RETURNING id""",
    "delete_cancelled": f"DELETE FROM {_T} WHERE id = :id AND status = 'cancelled'",
    "delete_terminal": f"""
        DELETE FROM {_T}
        WHERE id IN ({{ids}}) AND status IN ('ok', 'error', 'cancelled')""",
    "due_scheduled": f"""
        SELECT id, job_name FROM {_T}
        WHERE status = 'scheduled' AND scheduled_at <= :now
        ORDER BY scheduled_at LIMIT :limit""",
    "stale_pending": f"""
        SELECT id, job_name, redispatch_count FROM {_T}
        WHERE status = 'pending' AND updated_at <= :cutoff
        ORDER BY updated_at LIMIT :limit""",
    "running": f"""
        SELECT id, job_name, attempt, started_at, updated_at FROM {_T}
        WHERE status = 'running' AND updated_at <= :cutoff
        ORDER BY updated_at LIMIT :limit""",
    # Each branch walks its partial (time) index and stops at :limit, so a
    # backlog of any size costs the same; ``+job_name`` keeps the planner on it.
    "ready": f"""
        SELECT id, job_name FROM (
            SELECT * FROM (
                SELECT id, job_name, updated_at AS since FROM {_T}
                WHERE status = 'pending' AND updated_at <= :cutoff
                    AND +job_name IN ({{names}})
                ORDER BY updated_at LIMIT :limit)
            UNION ALL
            SELECT * FROM (
                SELECT id, job_name, scheduled_at AS since FROM {_T}
                WHERE status = 'scheduled' AND scheduled_at <= :cutoff
                    AND +job_name IN ({{names}})
                ORDER BY scheduled_at LIMIT :limit)
        ) AS ready ORDER BY since LIMIT :limit""",
    "unregistered_ids": f"""
        SELECT id FROM {_T} WHERE job_name NOT IN ({{names}})
            AND (:live OR status IN ('ok', 'error', 'cancelled'))
        LIMIT :limit""",
    "delete_ids": f"DELETE FROM {_T} WHERE id IN ({{ids}})",
    # COUNT(*): the terminal index alone answers (a covering scan), without the table
    "terminal_groups": f"""
        SELECT job_name, status, COUNT(*), MIN(completed_at), MAX(completed_at)
        FROM {_T} WHERE {TERMINAL}
        GROUP BY job_name, status""",
    "ids_beyond": f"""
        SELECT id FROM {_T} WHERE job_name = :job_name AND status = :status
            AND {TERMINAL}
        ORDER BY completed_at DESC, created_at DESC
        LIMIT :limit OFFSET :offset""",
    "ids_completed_before": f"""
        SELECT id FROM {_T} WHERE job_name = :job_name AND status = :status
            AND {TERMINAL} AND completed_at < :cutoff AND id <> :spare
        LIMIT :limit""",
    "newest_id": f"""
        SELECT id FROM {_T} WHERE job_name = :job_name AND status = :status
            AND {TERMINAL}
        ORDER BY completed_at DESC, created_at DESC LIMIT 1""",
    # one branch per live status, each on its partial index
    "live_counts": f"""
        SELECT job_name, COUNT(*) FROM (
            SELECT job_name FROM {_T} WHERE status = 'pending'
            UNION ALL
            SELECT job_name FROM {_T} WHERE status = 'scheduled'
            UNION ALL
            SELECT job_name FROM {_T} WHERE status = 'running'
        ) AS live GROUP BY job_name""",
}

SORTS: dict[str, str] = {
    "created_at": "created_at ASC",
    "-created_at": "created_at DESC",
    "started_at": "started_at ASC, created_at DESC",
    "-started_at": "started_at DESC, created_at DESC",
    "completed_at": "completed_at ASC, created_at DESC",
    "-completed_at": "completed_at DESC, created_at DESC",
    "status": "status ASC, created_at DESC",
    "-status": "status DESC, created_at DESC",
    "attempt": "attempt ASC, created_at DESC",
    "-attempt": "attempt DESC, created_at DESC",
}


def placeholders(prefix: str, count: int) -> str:
    """``:p0, :p1, ...`` for an ``IN (...)`` list of ``count`` bound values."""
    return ", ".join(f":{prefix}{index}" for index in range(count))


def status_filter(statuses: Sequence[str]) -> str:
    """The listing's status clause with the statuses as literals, so that the
    planner may take the partial index that carries them: one status is
    ``status = '...'``, terminal ones also repeat :data:`TERMINAL`.

    :raises InvalidArgumentError: a status that :data:`STATUSES` does not list.
    """
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown or not statuses:
        raise InvalidArgumentError(f"cannot list by status {unknown or statuses!r}")
    chosen = [status for status in STATUSES if status in statuses]  # no free text
    if len(chosen) == 1:
        clause = f"status = '{chosen[0]}'"
    else:
        clause = f"status IN ({', '.join(repr(status) for status in chosen)})"
    if set(chosen) <= set(TERMINAL_STATUSES):
        clause += f" AND {TERMINAL}"
    return clause


# Direct-mode batches: a batch claim leaves ``started_at`` NULL, so a row that is
# ``running`` without a start time was claimed by a batch and not yet recorded as
# started; its success records when it started. ``+status`` keeps SQLite on the
# primary key: on a status index (a MULTI-INDEX OR) each claim would walk every
# pending row, so a backlog would drain in quadratic time.
SQL.update(
    {
        "claim_batch": f"""
        UPDATE {_T} SET status = 'running', attempt = attempt + 1,
            started_at = NULL, updated_at = :now
        WHERE id IN ({{ids}}) AND (+status = 'pending'
            OR (+status = 'scheduled' AND scheduled_at <= :now))
        RETURNING {COLUMNS}""",
        "succeed_batch_keep": f"""
        UPDATE {_T} SET status = 'ok', completed_at = :now, updated_at = :now,
            started_at = COALESCE(started_at, :started_at), key = NULL, logs = :logs
        WHERE id = :id AND status = 'running'""",
        "mark_started": f"""
        UPDATE {_T} SET started_at = :started_at
        WHERE id = :id AND status = 'running' AND started_at IS NULL""",
        # back to pending, giving back the attempt the batch claim took
        "release_unstarted": f"""
        UPDATE {_T} SET status = 'pending', attempt = MAX(attempt - 1, 0),
            updated_at = :now
        WHERE id IN ({{ids}}) AND +status = 'running' AND started_at IS NULL""",
        # the sweep's once-only refund for a batch row of a process that died
        "release_crashed": f"""
        UPDATE {_T} SET status = 'pending', attempt = MAX(attempt - 1, 0),
            error = :note, updated_at = :now
        WHERE id = :id AND status = 'running' AND started_at IS NULL
            AND (error IS NULL OR error <> :note)""",
    }
)
