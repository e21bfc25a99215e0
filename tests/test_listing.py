"""Execution listings and derived actions: SPEC §10.4, §10.5 and §12.12 (#109-#122).

The fixture is six rows a-f of one job, created one hour apart (a oldest), with
columns chosen so that every ordering and filter of #110-#117 has one answer:

===  =========  =======  ============  ============  =======  =========
row  status     attempt  triggered_by  key           started  completed
===  =========  =======  ============  ============  =======  =========
a    ok         1        system        -             now-5m   now-4m
b    error      3        user-1        invoice-17    now-12m  now-3m
c    pending    0        -             receipt-1     -        -
d    running    2        system        -             now-20m  -
e    cancelled  1        user-2        re-invoice-3  -        now-2m
f    scheduled  0        -             order-9       -        -
===  =========  =======  ============  ============  =======  =========

Six distinct statuses make ``-status`` the exact reverse of ``status``; a and e share
an attempt, as do c and f, so the ``created_at DESC`` tiebreak shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import Execution, InvalidArgumentError, JobNotFoundError, Jobs
from tests import outbox
from tests.conftest import MakeJobs

UTC = timezone.utc
NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
JOB = "billing.invoice"
STATUSES = ("pending", "scheduled", "running", "ok", "error", "cancelled")


def minutes_ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


FIXTURE: dict[str, dict[str, Any]] = {
    "a": {
        "status": "ok",
        "attempt": 1,
        "triggered_by": "system",
        "started_at": minutes_ago(5),
        "completed_at": minutes_ago(4),
    },
    "b": {
        "status": "error",
        "attempt": 3,
        "triggered_by": "user-1",
        "key": "invoice-17",
        "started_at": minutes_ago(12),
        "completed_at": minutes_ago(3),
    },
    "c": {"status": "pending", "attempt": 0, "key": "receipt-1"},
    "d": {
        "status": "running",
        "attempt": 2,
        "triggered_by": "system",
        "started_at": minutes_ago(20),
    },
    "e": {
        "status": "cancelled",
        "attempt": 1,
        "triggered_by": "user-2",
        "key": "re-invoice-3",
        "completed_at": minutes_ago(2),
    },
    "f": {
        "status": "scheduled",
        "attempt": 0,
        "key": "order-9",
        "scheduled_at": NOW + timedelta(days=1),
    },
}


class Invoice(BaseModel):
    number: int = 0


def register(jobs: Jobs, name: str = JOB) -> None:
    def handler(ctx: Any) -> None:
        """Issue an invoice."""

    jobs.job(name, schema=Invoice)(handler)


def insert(jobs: Jobs, job_name: str, created_at: datetime, **columns: Any) -> str:
    """Write one crafted row straight into the outbox file; return its id."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "created_at": created_at,
        "updated_at": created_at,
        "job_name": job_name,
        "payload": '{"number": 1}',
        "logs": '[{"level": "INFO", "message": "hello"}]',
        **columns,
    }
    return outbox.insert_row(jobs, **values)


@pytest.fixture
def jobs(make_jobs: MakeJobs) -> Jobs:
    jobs = make_jobs()
    register(jobs)
    return jobs


@pytest.fixture
def rows(jobs: Jobs) -> dict[str, str]:
    """Letter -> id for the six fixture rows, created one hour apart, a oldest."""
    created = {
        letter: NOW - timedelta(hours=6 - index) for index, letter in enumerate(FIXTURE)
    }
    return {
        letter: insert(jobs, JOB, created[letter], **columns)
        for letter, columns in FIXTURE.items()
    }


def letters(rows: dict[str, str], content: Sequence[Execution]) -> str:
    by_id = {execution_id: letter for letter, execution_id in rows.items()}
    return "".join(by_id[execution.id] for execution in content)


def listed(jobs: Jobs, rows: dict[str, str], **query: Any) -> str:
    return letters(rows, jobs.executions(JOB, **query).content)


# paging (#110)


def test_default_page_is_newest_first_with_the_total(
    jobs: Jobs, rows: dict[str, str]
) -> None:
    """#110"""
    first = jobs.executions(JOB, size=4)
    second = jobs.executions(JOB, size=4, page=1)

    assert letters(rows, first.content) == "fedc"
    assert letters(rows, second.content) == "ba"
    assert (first.total_elements, second.total_elements) == (6, 6)
    assert first.total_pages == 2


def test_listing_loads_neither_payload_nor_logs(
    jobs: Jobs, rows: dict[str, str]
) -> None:
    """#110: the full row has them; the listing does not load them."""
    content = jobs.executions(JOB).content
    full = jobs.get_execution(rows["a"])

    assert len(content) == 6
    assert all(e.payload is None and e.logs is None for e in content)
    assert full is not None
    assert full.payload == {"number": 1}
    assert full.logs == [{"level": "INFO", "message": "hello"}]


def test_default_page_size_is_twenty(jobs: Jobs) -> None:
    for hour in range(25):
        insert(jobs, JOB, NOW - timedelta(hours=hour))

    page = jobs.executions(JOB)

    assert (len(page.content), page.size, page.total_elements) == (20, 20, 25)
    assert len(jobs.executions(JOB, page=1).content) == 5


def test_listing_shows_only_the_named_job(jobs: Jobs, rows: dict[str, str]) -> None:
    register(jobs, "billing.refund")
    insert(jobs, "billing.refund", NOW)

    page = jobs.executions(JOB)

    assert page.total_elements == 6
    assert {e.job_name for e in page.content} == {JOB}


# sorting (#111-#113)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", "abcdef"),
        ("-created_at", "fedcba"),
        ("-attempt", "bdeafc"),
        ("attempt", "fceadb"),
        ("status", "ebacdf"),
        ("-status", "fdcabe"),
    ],
)
def test_sort_orders_every_row(
    jobs: Jobs, rows: dict[str, str], sort: str, expected: str
) -> None:
    """#111"""
    assert listed(jobs, rows, sort=sort) == expected


@pytest.mark.parametrize(
    ("sort", "column", "expected"),
    [("-started_at", "started_at", "abd"), ("completed_at", "completed_at", "abe")],
)
def test_time_sorts_order_the_rows_that_have_the_time(
    jobs: Jobs, rows: dict[str, str], sort: str, column: str, expected: str
) -> None:
    """#111"""
    content = jobs.executions(JOB, sort=sort).content

    having = [e for e in content if getattr(e, column) is not None]

    assert letters(rows, having) == expected
    assert len(content) == 6


def test_descending_status_is_the_reverse_of_ascending(
    jobs: Jobs, rows: dict[str, str]
) -> None:
    """#111"""
    ascending = listed(jobs, rows, sort="status")

    assert listed(jobs, rows, sort="-status") == ascending[::-1]


def test_status_sort_groups_each_status_newest_first(
    jobs: Jobs, rows: dict[str, str]
) -> None:
    """#112: two more pending rows make ties that ``created_at DESC`` breaks."""
    rows["g"] = insert(jobs, JOB, NOW - timedelta(minutes=30), status="pending")
    rows["h"] = insert(jobs, JOB, NOW - timedelta(hours=10), status="pending")

    content = jobs.executions(JOB, sort="status").content

    order = [e.status for e in content]
    assert order == sorted(order)
    pending = [e for e in content if e.status == "pending"]
    assert letters(rows, pending) == "gch"


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("createdAt", "created_at"),
        ("-createdAt", "-created_at"),
        ("-startedAt", "-started_at"),
        ("completedAt", "completed_at"),
        ("-attempt", "-attempt"),
    ],
)
def test_camel_case_sort_names_are_accepted(
    jobs: Jobs, rows: dict[str, str], camel: str, snake: str
) -> None:
    assert listed(jobs, rows, sort=camel) == listed(jobs, rows, sort=snake)


@pytest.mark.parametrize("sort", ["payload", "-payload", "duration", "created", ""])
def test_sort_outside_the_whitelist_is_refused(jobs: Jobs, sort: str) -> None:
    """#113"""
    with pytest.raises(InvalidArgumentError, match="sort"):
        jobs.executions(JOB, sort=sort)


def test_unknown_job_name_is_refused(jobs: Jobs) -> None:
    with pytest.raises(JobNotFoundError, match="billing.unknown"):
        jobs.executions("billing.unknown")


# filters (#114-#117)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": ["error", "cancelled"]}, "eb"),
        ({"status": "running"}, "d"),
        ({"trigger": "scheduled"}, "da"),
        ({"trigger": "manual"}, "eb"),
        ({"trigger": "code"}, "fc"),
        ({"started_from": minutes_ago(30), "started_to": minutes_ago(10)}, "db"),
        ({"started_from": minutes_ago(15)}, "ba"),
        ({"started_from": minutes_ago(5)}, "a"),
        ({"started_to": minutes_ago(12)}, "db"),
        ({"key": "invoice"}, "eb"),
        ({"key": "invoice", "trigger": "manual", "status": ["error"]}, "b"),
    ],
    ids=[
        "status-list",
        "status-one",
        "trigger-scheduled",
        "trigger-manual",
        "trigger-code",
        "started-between",
        "started-from",
        "started-from-inclusive",
        "started-to-inclusive",
        "key-substring",
        "filters-combine",
    ],
)
def test_filters_select_the_expected_rows(
    jobs: Jobs, rows: dict[str, str], query: dict[str, Any], expected: str
) -> None:
    """#114-#117"""
    page = jobs.executions(JOB, **query)

    assert letters(rows, page.content) == expected
    assert page.total_elements == len(expected)


@pytest.mark.parametrize(
    "query",
    [
        {"status": ["done"]},
        {"trigger": "cron"},
        {"started_from": datetime(2030, 1, 1)},
        {"page": -1},
        {"size": 0},
    ],
    ids=["status", "trigger", "naive-datetime", "page", "size"],
)
def test_invalid_filter_values_are_refused(jobs: Jobs, query: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        jobs.executions(JOB, **query)


# derived actions (#109, #122)


@pytest.mark.parametrize(
    ("status", "retry", "cancel", "delete"),
    [
        ("pending", False, True, False),
        ("scheduled", False, True, False),
        ("running", False, True, False),
        ("ok", False, False, True),
        ("error", True, False, True),
        ("cancelled", True, False, True),
    ],
)
def test_can_follows_the_status(
    jobs: Jobs, status: str, retry: bool, cancel: bool, delete: bool
) -> None:
    """#109, #122"""
    execution_id = insert(jobs, JOB, NOW, status=status)

    fetched = jobs.get_execution(execution_id)
    (row,) = jobs.executions(JOB).content

    expected = {"retry": retry, "cancel": cancel, "delete": delete}
    assert fetched is not None
    assert fetched.can == expected
    assert row.can == expected


def test_fetched_execution_has_no_priority(jobs: Jobs, rows: dict[str, str]) -> None:
    """#109"""
    fetched = jobs.get_execution(rows["a"])

    assert fetched is not None
    assert fetched.can == {"retry": False, "cancel": False, "delete": True}
    assert not hasattr(fetched, "priority")
