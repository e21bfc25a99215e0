"""The admin service (SPEC §10, §12.12 #106-#108, #118-#121) on both stores."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    ExecutionNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    JobNotFoundError,
    Jobs,
    Retry,
    clock,
)
from alepha_jobs.admin import Actor, AdminService, iso_duration
from tests import outbox
from tests.conftest import MakeJobs
from tests.test_listing import FIXTURE, JOB, NOW, insert, register

CRON = "reports.daily"


class Mail(BaseModel):
    to: str


@pytest.fixture
def jobs(make_jobs: MakeJobs) -> Jobs:
    jobs = make_jobs()
    register(jobs)

    @jobs.job(CRON, cron="0 3 * * *", timezone="Europe/Paris", timeout=30)
    def daily(ctx: Any) -> None:
        """Build the daily report."""

    @jobs.job("emails.send", schema=Mail, retry=Retry(2))
    def send(ctx: Any) -> None:
        """Send one email."""

    return jobs


@pytest.fixture
def admin(jobs: Jobs) -> AdminService:
    return AdminService(jobs)


@pytest.fixture
def rows(jobs: Jobs) -> dict[str, str]:
    return {
        letter: insert(jobs, JOB, NOW - timedelta(hours=6 - index), **columns)
        for index, (letter, columns) in enumerate(FIXTURE.items())
    }


def registration(admin: AdminService, name: str) -> dict[str, Any]:
    (found,) = [job for job in admin.list_jobs() if job["name"] == name]
    return found


def finished(jobs: Jobs, status: str, minutes_ago: int, name: str = CRON) -> str:
    moment = clock.now() - timedelta(minutes=minutes_ago)
    return outbox.insert_row(
        jobs,
        job_name=name,
        status=status,
        created_at=moment,
        updated_at=moment,
        started_at=moment,
        completed_at=moment,
    )


# recent counts (#106-#108)


def test_a_cron_job_that_never_ran_has_no_recent_runs(admin: AdminService) -> None:
    """#106"""
    recent = registration(admin, CRON)["recent"]

    assert recent == {"ok": 0, "error": 0, "last_run": None, "last_status": None}


def test_one_trigger_counts_one_ok_run(jobs: Jobs, admin: AdminService) -> None:
    """#107: COUNT comes back as int on both stores."""
    admin.trigger(CRON)

    recent = registration(admin, CRON)["recent"]

    assert (recent["ok"], recent["error"], recent["last_status"]) == (1, 0, "ok")
    assert isinstance(recent["ok"], int)
    assert recent["last_run"] is not None


def test_last_status_follows_the_latest_completion(
    jobs: Jobs, admin: AdminService
) -> None:
    """#108"""
    finished(jobs, "ok", 30)
    finished(jobs, "ok", 20)
    finished(jobs, "error", 10)
    finished(jobs, "cancelled", 5)

    first = registration(admin, CRON)["recent"]
    finished(jobs, "ok", 1)
    second = registration(admin, CRON)["recent"]

    assert (first["ok"], first["error"], first["last_status"]) == (2, 1, "error")
    assert (second["ok"], second["last_status"]) == (3, "ok")


def test_registration_describes_the_job(admin: AdminService) -> None:
    daily = registration(admin, CRON)
    queue = registration(admin, "emails.send")

    assert (daily["type"], daily["cron"], daily["timezone"]) == (
        "cron",
        "0 3 * * *",
        "Europe/Paris",
    )
    assert daily["timeout"] == "PT30S"
    assert [t.hour for t in daily["next"]] == [3, 3, 3]
    assert daily["description"] == "Build the daily report."
    assert (queue["type"], queue["cron"], queue["next"]) == ("direct", None, [])
    assert queue["retry"] == {"retries": 2}
    assert queue["retention"] == admin.jobs.describe_retention("emails.send")


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (timedelta(0), "PT0S"),
        (timedelta(seconds=30), "PT30S"),
        (timedelta(minutes=1, seconds=30), "PT1M30S"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(days=1, seconds=1.5), "P1DT1.5S"),
        (timedelta(days=3), "P3D"),
    ],
)
def test_timeouts_are_iso_8601_durations(
    store_kind: str, value: timedelta | None, text: str | None
) -> None:
    assert iso_duration(value) == text


# delete (#118-#121)


def test_deleting_a_finished_row_removes_it(
    jobs: Jobs, admin: AdminService, rows: dict[str, str]
) -> None:
    """#118"""
    admin.delete(rows["a"])

    assert jobs.get_execution(rows["a"]) is None


@pytest.mark.parametrize(
    "letter", ["c", "f", "d"], ids=["pending", "scheduled", "running"]
)
def test_deleting_a_live_row_is_refused(
    jobs: Jobs, admin: AdminService, rows: dict[str, str], letter: str
) -> None:
    """#119"""
    with pytest.raises(InvalidStateError, match="Cancel it first"):
        admin.delete(rows[letter])

    assert jobs.get_execution(rows[letter]) is not None


def test_deleting_an_unknown_id_is_not_found(admin: AdminService) -> None:
    """#120"""
    with pytest.raises(ExecutionNotFoundError, match="Execution not found"):
        admin.delete(str(uuid.uuid4()))


def test_bulk_delete_counts_deleted_and_skipped(
    jobs: Jobs, admin: AdminService, rows: dict[str, str]
) -> None:
    """#121"""
    ids = [rows[x] for x in "abcda"] + [str(uuid.uuid4())]

    result = admin.delete_many(ids)

    assert result == {"deleted": 2, "skipped": 3}
    remaining = {e.id for e in jobs.executions(JOB).content}
    assert remaining == {rows[x] for x in "cdef"}


def test_bulk_delete_of_nothing_and_of_too_much(admin: AdminService) -> None:
    assert admin.delete_many([]) == {"deleted": 0, "skipped": 0}
    with pytest.raises(InvalidArgumentError, match="at most 100"):
        admin.delete_many([str(uuid.uuid4()) for _ in range(101)])
    with pytest.raises(InvalidArgumentError, match="not a UUID"):
        admin.delete_many(["a-b"])


# retry and cancel (§10.2)


def test_retry_pushes_a_new_execution_and_keeps_the_old_row(
    jobs: Jobs, admin: AdminService
) -> None:
    old = outbox.insert_row(
        jobs,
        job_name="emails.send",
        status="error",
        created_at=NOW,
        updated_at=NOW,
        payload='{"to": "ada@example.com"}',
        error="smtp down",
    )

    new = admin.retry(old, Actor("user-1", "Ada"))

    assert new is not None and new != old
    retried = jobs.get_execution(new)
    assert retried is not None
    assert retried.payload == {"to": "ada@example.com"}
    assert (retried.triggered_by, retried.triggered_by_name) == ("user-1", "Ada")
    assert retried.key is None
    unchanged = jobs.get_execution(old)
    assert unchanged is not None and unchanged.status == "error"


def test_retry_of_a_cron_row_triggers_the_job(jobs: Jobs, admin: AdminService) -> None:
    old = finished(jobs, "error", 5)

    assert admin.retry(old) is None

    assert registration(admin, CRON)["recent"]["ok"] == 1


def test_retry_is_refused_unless_error_or_cancelled(
    jobs: Jobs, admin: AdminService, rows: dict[str, str]
) -> None:
    with pytest.raises(InvalidStateError, match="Cannot retry execution in 'ok'"):
        admin.retry(rows["a"])
    with pytest.raises(ExecutionNotFoundError):
        admin.retry(str(uuid.uuid4()))


def test_retry_of_an_unregistered_job_is_not_found(
    jobs: Jobs, admin: AdminService
) -> None:
    old = finished(jobs, "error", 5, name="gone.away")

    with pytest.raises(JobNotFoundError, match="gone.away"):
        admin.retry(old)


def test_cancel_records_the_actor(
    jobs: Jobs, admin: AdminService, rows: dict[str, str]
) -> None:
    admin.cancel(rows["c"], Actor("user-9", "Grace"))

    row = jobs.get_execution(rows["c"])
    assert row is not None
    assert (row.status, row.cancelled_by, row.cancelled_by_name) == (
        "cancelled",
        "user-9",
        "Grace",
    )
    with pytest.raises(InvalidStateError):
        admin.cancel(rows["a"])


def test_unknown_job_and_execution_are_not_found(admin: AdminService) -> None:
    with pytest.raises(JobNotFoundError, match="Job not found: nope.nope"):
        admin.trigger("nope.nope")
    with pytest.raises(ExecutionNotFoundError):
        admin.execution(str(uuid.uuid4()))
    with pytest.raises(JobNotFoundError):
        admin.job("nope.nope")
