"""Retention and the trim: SPEC §5.6, §5.7 and §12.11 (#88-#105), with DESIGN §8.2.

Terminal rows are crafted straight into the test's outbox with chosen
``completed_at`` values, or produced by real runs through the store. "Now" is driven
with freezegun where the age of a row matters.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import Jobs, Retention, Retry, Rule
from alepha_jobs.definition import Job
from alepha_jobs.store.base import NewExecution
from alepha_jobs.trim import CEILING
from tests.conftest import MakeJobs, RecordingDispatcher
from tests.outbox import connect

UTC = timezone.utc
T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
TERMINAL = ("ok", "error", "cancelled")
LIVE = ("pending", "scheduled", "running")


class Payload(BaseModel):
    n: int = 0


def register(jobs: Jobs, name: str, *, fail: bool = False, **options: Any) -> Job:
    """A job that does nothing (or raises); queue-kind unless ``cron=`` is given."""
    if "cron" not in options:
        options.setdefault("schema", Payload)

    def handler(ctx: Any) -> None:
        if fail:
            raise RuntimeError("boom")

    return jobs.job(name, description="A test job.", **options)(handler)


def insert(
    jobs: Jobs,
    job_name: str,
    status: str,
    completed: Sequence[datetime | None],
    *,
    scheduled_at: datetime | None = None,
) -> list[str]:
    """Insert one row per ``completed`` time (``created_at`` a minute earlier)."""
    rows = []
    for when in completed:
        created = (when or datetime.now(UTC)) - timedelta(minutes=1)
        rows.append(
            (
                str(uuid.uuid4()),
                created,
                when or created,
                job_name,
                status,
                when,
                scheduled_at,
            )
        )
    with connect(jobs) as connection:
        connection.executemany(
            "INSERT INTO job_executions (id, created_at, updated_at, job_name, "
            "status, completed_at, scheduled_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return [row[0] for row in rows]


def hourly(count: int, newest: datetime) -> list[datetime]:
    """``count`` completion times one hour apart, newest first."""
    return [newest - timedelta(hours=i) for i in range(count)]


def remaining(jobs: Jobs, job_name: str, status: str | None = None) -> list[str]:
    """Ids left for ``job_name`` (optionally one status), newest completion first."""
    sql = "SELECT id FROM job_executions WHERE job_name = ?"
    params: list[str] = [job_name]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    sql += " ORDER BY completed_at DESC, created_at DESC"
    with connect(jobs) as connection:
        return [row[0] for row in connection.execute(sql, params)]


def statuses(jobs: Jobs, job_name: str) -> list[str]:
    with connect(jobs) as connection:
        rows = connection.execute(
            "SELECT status FROM job_executions WHERE job_name = ? ORDER BY status",
            (job_name,),
        )
        return [row[0] for row in rows]


def six_rows(jobs: Jobs, job_name: str, now: datetime) -> dict[str, str]:
    """One row per status; the ``scheduled`` one is due tomorrow."""
    ids = {}
    for status in TERMINAL:
        ids[status] = insert(jobs, job_name, status, [now - timedelta(hours=1)])[0]
    for status in LIVE:
        tomorrow = now + timedelta(days=1) if status == "scheduled" else None
        ids[status] = insert(jobs, job_name, status, [None], scheduled_at=tomorrow)[0]
    return ids


# describe_retention: the effective rules (§5.6)


@pytest.mark.parametrize(
    ("expression", "cadence", "last"),
    [
        ("*/5 * * * *", "frequent", 12),
        ("*/15 * * * *", "frequent", 12),
        ("*/30 * * * *", "hourly", 24),
        ("0 * * * *", "hourly", 24),
        ("0 3 * * *", "daily", 7),
        ("0 9 * * 1-5", "daily", 7),
        ("0 0 * * 0", "slower", 5),
        ("0 0 1 * *", "slower", 5),
    ],
)
def test_cron_default_retention_follows_cadence(
    make_jobs: MakeJobs, expression: str, cadence: str, last: int
) -> None:
    """#90"""
    jobs = make_jobs()
    register(jobs, "reports.tick", cron=expression)

    assert jobs.describe_retention("reports.tick") == {
        "ok": {"last": last},
        "error": {"days": 30},
        "source": {"ok": "default", "error": "default"},
        "cadence": cadence,
    }


def test_queue_default_retention_keeps_failures_thirty_days_and_no_successes(
    make_jobs: MakeJobs,
) -> None:
    """#91"""
    jobs = make_jobs()
    register(jobs, "emails.send")

    assert jobs.describe_retention("emails.send") == {
        "ok": False,
        "error": {"days": 30},
        "source": {"ok": "default", "error": "default"},
    }


def test_declared_error_rule_replaces_only_the_error_default(
    make_jobs: MakeJobs,
) -> None:
    """#92"""
    jobs = make_jobs()
    job = register(
        jobs,
        "reports.daily",
        cron="0 3 * * *",
        retention=Retention(error=Rule(last=50, days=90)),
    )

    assert job.describe_retention() == {
        "ok": {"last": 7},
        "error": {"last": 50, "days": 90},
        "source": {"ok": "default", "error": "job"},
        "cadence": "daily",
    }


def test_days_given_as_a_function_is_evaluated_at_each_description(
    make_jobs: MakeJobs,
) -> None:
    """#93"""
    window = [12]
    jobs = make_jobs()
    keep_for = Retention(ok=Rule(days=lambda: window[0]))
    register(jobs, "exports.build", retention=keep_for)
    first = jobs.describe_retention("exports.build")["ok"]

    window[0] = 3

    assert first == {"days": 12}
    assert jobs.describe_retention("exports.build") == {
        "ok": {"days": 3},
        "error": {"days": 30},
        "source": {"ok": "job", "error": "default"},
    }


def test_error_days_come_from_the_config(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(retention_error_days=7)
    register(jobs, "emails.send")

    assert jobs.describe_retention("emails.send")["error"] == {"days": 7}


# the trim by count (§5.7 phase 2)


def test_trim_cuts_a_large_backlog_to_the_limit_in_one_tick(
    make_jobs: MakeJobs,
) -> None:
    """#88"""
    jobs = make_jobs()
    register(jobs, "emails.send", retention=Retention(error=Rule(last=3)))
    ids = insert(jobs, "emails.send", "error", hourly(120, T0))

    report = jobs.trim()

    assert remaining(jobs, "emails.send") == ids[:3]
    assert report.trimmed == 117


def test_trim_deletes_nothing_when_exactly_at_the_limit(make_jobs: MakeJobs) -> None:
    """#89"""
    jobs = make_jobs()
    register(jobs, "emails.send", retention=Retention(error=Rule(last=3)))
    ids = insert(jobs, "emails.send", "error", hourly(3, T0))

    report = jobs.trim()

    assert remaining(jobs, "emails.send") == ids
    assert report.trimmed == 0


@pytest.mark.parametrize(
    ("expression", "rows", "kept"),
    [("0 3 * * *", 10, 7), ("*/5 * * * *", 20, 12)],
    ids=["daily-keeps-7", "every-5-min-keeps-12"],
)
def test_cron_successes_are_trimmed_to_the_cadence_default(
    make_jobs: MakeJobs, expression: str, rows: int, kept: int
) -> None:
    """#94, #95"""
    jobs = make_jobs()
    register(jobs, "reports.tick", cron=expression)
    ids = insert(jobs, "reports.tick", "ok", hourly(rows, T0))

    jobs.trim()

    assert remaining(jobs, "reports.tick") == ids[:kept]


def test_cancelled_rows_follow_the_error_rule(make_jobs: MakeJobs) -> None:
    """#98"""
    jobs = make_jobs()
    register(jobs, "emails.send", retention=Retention(error=Rule(last=2)))
    ids = insert(jobs, "emails.send", "cancelled", hourly(5, T0))

    jobs.trim()

    assert remaining(jobs, "emails.send") == ids[:2]


def test_max_rows_caps_default_rules_but_not_declared_ones(
    make_jobs: MakeJobs,
) -> None:
    """#99"""
    jobs = make_jobs(retention_max_rows=3)
    register(jobs, "alerts.default")
    register(jobs, "alerts.declared", retention=Retention(error=Rule(days=30)))
    now = datetime.now(UTC)
    capped = insert(jobs, "alerts.default", "error", hourly(6, now))
    declared = insert(jobs, "alerts.declared", "error", hourly(6, now))

    jobs.trim()

    assert remaining(jobs, "alerts.default") == capped[:3]
    assert remaining(jobs, "alerts.declared") == declared


def test_status_not_recorded_is_emptied_and_other_statuses_stay(
    make_jobs: MakeJobs,
) -> None:
    """#100"""
    jobs = make_jobs()
    register(jobs, "reports.daily", cron="0 3 * * *", retention=Retention(ok=False))
    now = datetime.now(UTC)
    insert(jobs, "reports.daily", "ok", hourly(4, now))
    errors = insert(jobs, "reports.daily", "error", hourly(2, now))

    jobs.trim()

    assert remaining(jobs, "reports.daily", "ok") == []
    assert remaining(jobs, "reports.daily", "error") == errors


def test_trim_stops_at_the_ceiling_per_job_and_status_and_continues_next_tick(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs()
    register(jobs, "emails.send", retention=Retention(error=Rule(last=1)))
    ids = insert(jobs, "emails.send", "error", hourly(CEILING + 201, T0))

    first = jobs.trim()
    left_after_first = len(remaining(jobs, "emails.send"))
    second = jobs.trim()

    assert (first.trimmed, left_after_first) == (CEILING, 201)
    assert second.trimmed == 200
    assert remaining(jobs, "emails.send") == ids[:1]


# the trim by age


def test_failures_older_than_the_window_are_trimmed(make_jobs: MakeJobs) -> None:
    """#96: real failures, three of them 31 days before the trim."""
    recording = RecordingDispatcher()
    jobs = make_jobs(dispatcher=recording)
    job = register(jobs, "imports.parse", fail=True)

    with freeze_time(T0) as frozen:
        for n in range(3):
            job.push({"n": n})
        recording.deliver_all()
        frozen.move_to(T0 + timedelta(days=31))
        recent = [job.push({"n": n}) for n in (3, 4)]
        recording.deliver_all()

        jobs.trim()

    assert statuses(jobs, "imports.parse") == ["error", "error"]
    assert sorted(remaining(jobs, "imports.parse")) == sorted(recent)


def test_cron_failures_older_than_the_window_are_trimmed(make_jobs: MakeJobs) -> None:
    """#96 for a cron job: the newest row is recent, so nothing is spared."""
    jobs = make_jobs()
    register(jobs, "reports.daily", cron="0 3 * * *")
    insert(jobs, "reports.daily", "error", hourly(3, T0))
    recent = insert(jobs, "reports.daily", "error", hourly(2, T0 + timedelta(days=31)))

    with freeze_time(T0 + timedelta(days=31, hours=1)):
        jobs.trim()

    assert remaining(jobs, "reports.daily") == recent


@pytest.mark.parametrize(
    ("options", "kept"),
    [({"cron": "0 0 1 * *"}, 1), ({}, 0)],
    ids=["monthly-cron-keeps-newest", "queue-keeps-none"],
)
def test_only_cron_jobs_keep_their_newest_row_past_the_window(
    make_jobs: MakeJobs, options: dict[str, Any], kept: int
) -> None:
    """#97"""
    jobs = make_jobs()
    register(jobs, "reports.monthly", **options)
    ids = insert(jobs, "reports.monthly", "error", hourly(3, T0 - timedelta(days=40)))

    with freeze_time(T0):
        jobs.trim()

    assert remaining(jobs, "reports.monthly") == ids[:kept]


def test_a_single_old_cron_row_is_kept(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    register(jobs, "reports.monthly", cron="0 0 1 * *")
    ids = insert(jobs, "reports.monthly", "error", [T0 - timedelta(days=90)])

    with freeze_time(T0):
        report = jobs.trim()

    assert remaining(jobs, "reports.monthly") == ids
    assert report.trimmed == 0


# what is recorded at the end of a run (§5.6)


@pytest.mark.parametrize(
    ("retention", "kept"),
    [(Retention(error=False), []), (None, ["error"])],
    ids=["error-not-recorded", "default"],
)
def test_failed_row_is_deleted_when_failures_are_not_recorded(
    make_jobs: MakeJobs, retention: Retention | None, kept: list[str]
) -> None:
    """#101"""
    recording = RecordingDispatcher()
    jobs = make_jobs(dispatcher=recording)
    job = register(jobs, "imports.parse", fail=True, retention=retention)
    execution_id = job.push({"n": 1})

    recording.deliver_all()

    row = jobs.get_execution(execution_id)
    assert ([row.status] if row else []) == kept


def test_cron_with_retry_keeps_its_cadence_default(make_jobs: MakeJobs) -> None:
    """#102: the success rule comes from the cadence, not from the run path."""
    jobs = make_jobs()
    register(jobs, "reports.daily", cron="0 3 * * *", retry=Retry(2))

    assert jobs.describe_retention("reports.daily")["ok"] == {"last": 7}


def test_cron_outbox_success_keeps_an_ok_row(make_jobs: MakeJobs) -> None:
    """#102: a cron-with-retry row that succeeds through the outbox stays ``ok``."""
    jobs = make_jobs(dispatcher=RecordingDispatcher())
    register(jobs, "reports.daily", cron="0 3 * * *", retry=Retry(2))
    execution_id = str(uuid.uuid4())
    jobs.store.insert([NewExecution(execution_id, "reports.daily", None, 3)])

    jobs.process_execution("reports.daily", execution_id)

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert (row.status, row.attempt) == ("ok", 1)


def test_cron_trigger_with_retry_leaves_one_ok_row(make_jobs: MakeJobs) -> None:
    """#102: the trigger writes an outbox row that the pool runs and keeps."""
    jobs = make_jobs()
    job = register(jobs, "reports.daily", cron="0 3 * * *", retry=Retry(2))
    jobs.start()

    job.trigger(triggered_by="user-1")
    assert jobs.drain(timeout=5)

    with connect(jobs) as connection:
        rows = connection.execute(
            "SELECT status, attempt, max_attempts, triggered_by FROM job_executions"
        ).fetchall()
    assert rows == [("ok", 1, 3, "user-1")]
    assert job.describe_retention()["ok"] == {"last": 7}


# purging unregistered job names (§5.7 phase 1, DESIGN §8.2)


def test_trim_deletes_terminal_rows_of_unregistered_jobs_and_keeps_live_ones(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """#103 as DESIGN §8.2 amends it."""
    caplog.set_level(logging.WARNING, logger="alepha_jobs.trim")
    jobs = make_jobs()
    register(jobs, "orders.sync", retention=Retention(ok=Rule(last=10)))
    now = datetime.now(UTC)
    registered = six_rows(jobs, "orders.sync", now)
    orphaned = six_rows(jobs, "legacy.sync", now)

    report = jobs.trim()

    assert sorted(remaining(jobs, "orders.sync")) == sorted(registered.values())
    assert sorted(remaining(jobs, "legacy.sync")) == sorted(
        orphaned[status] for status in LIVE
    )
    assert report.purged == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("legacy.sync (3)" in message for message in warnings)
    assert not any("orders.sync" in message for message in warnings)


def test_trim_purges_unregistered_rows_beyond_one_chunk_in_one_tick(
    make_jobs: MakeJobs,
) -> None:
    """#104"""
    jobs = make_jobs()
    register(jobs, "orders.sync")
    names = ("old.one", "old.two", "old.three")
    for name in names:  # 401 rows per name, over the three terminal statuses
        for status, count in zip(TERMINAL, (134, 134, 133), strict=True):
            insert(jobs, name, status, hourly(count, T0))

    report = jobs.trim()

    assert report.purged == 1203
    assert all(remaining(jobs, name) == [] for name in names)


def test_purge_stops_at_the_ceiling_and_continues_next_tick(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs()
    register(jobs, "orders.sync")
    insert(jobs, "old.one", "error", hourly(CEILING + 200, T0))

    first = jobs.trim()
    left_after_first = len(remaining(jobs, "old.one"))
    second = jobs.trim()

    assert (first.purged, left_after_first) == (CEILING, 200)
    assert (second.purged, remaining(jobs, "old.one")) == (200, [])


def test_process_without_registered_jobs_purges_nothing(make_jobs: MakeJobs) -> None:
    """#105"""
    jobs = make_jobs()
    ids = six_rows(jobs, "legacy.sync", datetime.now(UTC))

    report = jobs.trim()

    assert sorted(remaining(jobs, "legacy.sync")) == sorted(ids.values())
    assert (report.purged, report.trimmed) == (0, 0)
