"""Execution ids: version 7 UUIDs (time-ordered, so inserts append to the id
index), still plain UUID text, and unique even under frozen time."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import JobContext
from alepha_jobs.pushing import new_id
from tests.conftest import MakeJobs

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Work(BaseModel):
    n: int


def test_an_id_is_a_version_7_uuid_in_its_canonical_text() -> None:
    text = new_id()
    parsed = uuid.UUID(text)

    assert str(parsed) == text
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_starts_with_the_unix_milliseconds_of_the_library_clock() -> None:
    with freeze_time(START):
        text = new_id()

    millis = int(text.replace("-", "")[:12], 16)
    assert millis == int(START.timestamp() * 1000)


def test_ids_made_under_frozen_time_are_all_distinct() -> None:
    with freeze_time(START):
        ids = [new_id() for _ in range(20_000)]

    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(text).version == 7 for text in ids)


def test_ids_made_a_millisecond_apart_sort_in_the_order_they_were_made() -> None:
    with freeze_time(START) as frozen:
        ids = []
        for _ in range(50):
            ids.append(new_id())
            frozen.tick(timedelta(milliseconds=1))

    assert sorted(ids) == ids


def test_push_returns_a_version_7_id(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    @jobs.job("ids.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Do nothing."""

    first = jobs.push("ids.work", {"n": 1})

    assert uuid.UUID(first).version == 7
    assert jobs.get_execution(first) is not None
