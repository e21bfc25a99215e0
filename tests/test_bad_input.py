"""Bad input: a clear error at the call, nothing written (DESIGN §1, SPEC §2.1.1).

Every refusal is checked twice: the error names what is wrong, and the outbox
table holds no row afterwards (read on a raw connection, next to the library).
"""

from __future__ import annotations

import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from alepha_jobs import (
    ExecutionNotFoundError,
    InvalidArgumentError,
    Job,
    JobNotFoundError,
    Jobs,
    JobsConfig,
    JobsError,
    JobUsageError,
    PayloadError,
    PushItem,
    SchemaVersionError,
    StoreError,
)
from alepha_jobs.context import JobContext

from . import outbox
from .conftest import NEVER, MakeJobs


class Address(BaseModel):
    city: str
    zip: int


class Line(BaseModel):
    sku: str
    qty: int


class Welcome(BaseModel):
    user_id: int
    note: str = ""
    score: float = 0.0
    data: Any = None
    address: Address | None = None
    lines: list[Line] = []


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: int


def _noop(ctx: JobContext[Any]) -> None:
    """Do nothing."""


@pytest.fixture
def db_path(db_url: str) -> Path:
    return Path(db_url[len("sqlite:///") :])


@pytest.fixture
def jobs(make_jobs: MakeJobs) -> Jobs:
    """A runtime that is not started: a push writes its row and runs nothing."""
    return make_jobs()


@pytest.fixture
def welcome(jobs: Jobs) -> Job:
    return jobs.job("emails.welcome", schema=Welcome)(_noop)


def rows(jobs: Jobs) -> int:
    """Rows in the outbox, counted on a raw connection beside the library."""
    with outbox.connect(jobs) as raw:
        return int(raw.execute("SELECT count(*) FROM job_executions")[0][0])


@pytest.fixture
def nothing_written(jobs: Jobs, welcome: Job) -> Iterator[None]:
    """After the test body, neither the library nor sqlite3 sees any row."""
    yield
    assert jobs.executions("emails.welcome").total_elements == 0
    assert rows(jobs) == 0


# payloads that fail their schema


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"user_id": "not a number"}, "user_id"),
        ({}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": 1, "note": 5}, "note"),
        ({"user_id": 1, "address": {"city": "Lyon", "zip": "six"}}, "address.zip"),
        ({"user_id": 1, "address": {"zip": 69001}}, "address.city"),
        (
            {"user_id": 1, "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "x"}]},
            "lines.1.qty",
        ),
    ],
)
def test_a_payload_failing_its_schema_names_the_field(
    welcome: Job, payload: dict[str, Any], named: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        welcome.push(payload)

    message = str(caught.value)
    assert named in message
    assert "emails.welcome" in message
    assert isinstance(caught.value, JobsError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("payload", [None, 5, "user_id=1", [{"user_id": 1}]])
def test_a_payload_that_is_not_an_object_is_refused(welcome: Job, payload: Any) -> None:
    with pytest.raises(PayloadError, match="Welcome"):
        welcome.push(payload)


class Opaque:
    """Not something pydantic can serialise."""


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "data",
    [object(), Opaque(), {"nested": Opaque()}, b"\xff\xfe"],
    ids=["object", "instance", "nested", "non-utf8-bytes"],
)
def test_a_payload_that_is_not_json_is_refused(welcome: Job, data: Any) -> None:
    with pytest.raises(PayloadError, match="JSON"):
        welcome.push({"user_id": 1, "data": data})


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"user_id": 1, "score": math.nan}, "score"),
        ({"user_id": 1, "score": math.inf}, "score"),
        ({"user_id": 1, "data": math.nan}, "data"),
        ({"user_id": 1, "data": {"ratio": -math.inf}}, "data.ratio"),
        ({"user_id": 1, "data": [1.0, math.nan]}, "data[1]"),
    ],
    ids=["float-nan", "float-inf", "any-nan", "nested-inf", "list-nan"],
)
def test_a_non_finite_float_is_refused_not_turned_into_null(
    welcome: Job, payload: dict[str, Any], named: str
) -> None:
    """JSON has no NaN or infinity; storing ``null`` instead would lose data."""
    with pytest.raises(PayloadError) as caught:
        welcome.push(payload)

    assert named in str(caught.value)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"user_id": 1, "note": "a\x00b"}, "note"),
        ({"user_id": 1, "data": {"inner": ["ok", "\x00"]}}, "data.inner[1]"),
        ({"user_id": 1, "data": {"k\x00": 1}}, "data"),
    ],
)
def test_a_nul_character_is_refused_naming_where(
    welcome: Job, payload: dict[str, Any], named: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        welcome.push(payload)

    assert named in str(caught.value)
    assert "NUL" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "null",
        "a\\u0000b",
        "caf\u00e9 \U0001f600",
        {"k\u00e9": [1e16, -0.0, 2.5, None, True]},
    ],
    ids=["none", "null-text", "escaped-nul-text", "non-ascii", "nested"],
)
def test_a_payload_that_only_looks_suspicious_is_stored_as_given(
    jobs: Jobs, welcome: Job, data: Any
) -> None:
    """Issue 7: the quick text check of a payload sends these to the careful
    walk, or lets them through; either way they are stored unchanged."""
    execution_id = welcome.push({"user_id": 1, "note": "\u00e9", "data": data})

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.payload == Welcome(user_id=1, note="\u00e9", data=data).model_dump(
        mode="json"
    )


@pytest.mark.usefixtures("nothing_written")
def test_one_bad_item_in_push_many_writes_none_of_them(welcome: Job) -> None:
    """SPEC §2.2 step 4: every payload is validated before any row is written."""
    items = [
        {"user_id": 1},
        PushItem({"user_id": 2}, key="two"),
        {"user_id": "three"},
    ]

    with pytest.raises(PayloadError, match="user_id"):
        welcome.push_many(items)


@pytest.mark.usefixtures("nothing_written")
def test_a_bad_delay_in_push_many_writes_none_of_them(welcome: Job) -> None:
    items = [PushItem({"user_id": 1}, key="one"), PushItem({"user_id": 2}, delay=-1)]

    with pytest.raises(InvalidArgumentError, match="delay"):
        welcome.push_many(items)


# unknown jobs and the wrong kind of job


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "call",
    [
        lambda jobs: jobs.push("nope.job", {}),
        lambda jobs: jobs.push_many("nope.job", [{}]),
        lambda jobs: jobs.cancel_by_key("nope.job", "k"),
        lambda jobs: jobs.trigger("nope.job", {"user_id": 1}),
    ],
    ids=["push", "push_many", "cancel_by_key", "trigger"],
)
def test_an_unknown_job_name_is_refused(
    jobs: Jobs, call: Callable[[Jobs], Any]
) -> None:
    """SPEC §2.1.1 step 1."""
    with pytest.raises(JobNotFoundError) as caught:
        call(jobs)

    assert str(caught.value) == "Job not registered: nope.job"
    assert isinstance(caught.value, JobsError)


def test_a_push_to_a_cron_job_points_at_trigger(jobs: Jobs) -> None:
    """SPEC §2.1.1 step 1: a cron job is not queue-mode."""
    nightly = jobs.job("reports.nightly", cron="0 3 * * *")(_noop)

    with pytest.raises(JobUsageError) as caught:
        nightly.push({})
    with pytest.raises(JobUsageError):
        jobs.push_many("reports.nightly", [{}])

    assert "trigger()" in str(caught.value)
    assert "reports.nightly" in str(caught.value)
    assert rows(jobs) == 0


# push options


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "options",
    [
        {"delay": 5},
        {"delay": 0},
        {"delay": timedelta(0)},
        {"scheduled_at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
    ],
)
def test_inline_with_a_delay_asks_to_pick_one(
    welcome: Job, options: dict[str, Any]
) -> None:
    """SPEC §2.1.1 step 5: any given delay counts, zero included."""
    with pytest.raises(JobUsageError, match="Pick one"):
        welcome.push({"user_id": 1}, inline=True, **options)


@pytest.mark.usefixtures("nothing_written")
def test_a_job_level_inline_default_with_a_delay_asks_to_pick_one(
    jobs: Jobs, welcome: Job
) -> None:
    quick = jobs.job("codes.send", schema=Welcome, inline=True)(_noop)

    with pytest.raises(JobUsageError, match="Pick one"):
        quick.push({"user_id": 1}, delay=5)
    assert jobs.executions("codes.send").total_elements == 0


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "scheduled_at",
    [datetime(2030, 1, 1, 12, 0), datetime.now()],
    ids=["naive-future", "naive-now"],
)
def test_a_naive_scheduled_at_is_refused(welcome: Job, scheduled_at: datetime) -> None:
    with pytest.raises(InvalidArgumentError, match="naive") as caught:
        welcome.push({"user_id": 1}, scheduled_at=scheduled_at)

    assert "scheduled_at" in str(caught.value)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("scheduled_at", ["2030-01-01T00:00:00Z", 1893456000])
def test_a_scheduled_at_that_is_not_a_datetime_is_refused(
    welcome: Job, scheduled_at: Any
) -> None:
    with pytest.raises(InvalidArgumentError, match="scheduled_at"):
        welcome.push({"user_id": 1}, scheduled_at=scheduled_at)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "delay",
    [-1, -0.5, timedelta(seconds=-1), "-5 min", (-1, "hours"), "soon", math.nan, True],
)
def test_a_negative_or_malformed_delay_is_refused(welcome: Job, delay: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        welcome.push({"user_id": 1}, delay=delay)

    assert "delay" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("key", ["", 42, b"key"])
def test_a_key_that_is_empty_or_not_text_is_refused(welcome: Job, key: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="key"):
        welcome.push({"user_id": 1}, key=key)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"user_id": 1, "note": "a\ud800b"}, "note"),
        ({"user_id": 1, "data": {"inner": ["ok", "\udfff"]}}, "data.inner[1]"),
    ],
)
def test_an_unpaired_surrogate_is_refused_naming_where(
    welcome: Job, payload: dict[str, Any], named: str
) -> None:
    """Issue 4: text no store can encode gets the same clear error on both
    stores (SQLite would keep the escaped JSON, Postgres would refuse it)."""
    with pytest.raises(PayloadError) as caught:
        welcome.push(payload)

    assert named in str(caught.value)
    assert "unpaired surrogate (U+D" in str(caught.value)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "surrogate"])
def test_a_key_or_actor_no_store_can_hold_is_refused_alike(
    jobs: Jobs, welcome: Job, text: str
) -> None:
    """Issue 4: never a driver error (UnicodeEncodeError, psycopg DataError)."""
    with pytest.raises(InvalidArgumentError, match="^key .* the outbox cannot"):
        welcome.push({"user_id": 1}, key=text)
    with pytest.raises(InvalidArgumentError, match="^key "):
        welcome.cancel_by_key(text)
    with pytest.raises(InvalidArgumentError, match="^triggered_by "):
        welcome.trigger({"user_id": 1}, triggered_by=text)
    with pytest.raises(InvalidArgumentError, match="^cancelled_by_name "):
        welcome.cancel_by_key("k", cancelled_by_name=text)
    with pytest.raises(InvalidArgumentError, match="^cancelled_by "):
        jobs.cancel(str(uuid.uuid4()), cancelled_by=text)


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "surrogate"])
def test_an_id_no_store_can_hold_is_absent_alike_and_a_filter_is_refused(
    jobs: Jobs, welcome: Job, text: str
) -> None:
    """No row can have such an id: the answer is "not found" on both stores,
    where Postgres would refuse the lookup and SQLite could not encode it."""
    assert jobs.get_execution(text) is None
    with pytest.raises(ExecutionNotFoundError):
        jobs.cancel(text)
    with pytest.raises(ExecutionNotFoundError):
        welcome.cancel(text)
    with pytest.raises(InvalidArgumentError, match="^key filter .* no execution"):
        jobs.executions("emails.welcome", key=text)


@pytest.mark.usefixtures("nothing_written")
def test_an_empty_key_is_refused_by_cancel_by_key(welcome: Job) -> None:
    with pytest.raises(InvalidArgumentError, match="key"):
        welcome.cancel_by_key("")


# what is accepted


def test_a_schema_instance_is_accepted_as_the_payload(jobs: Jobs, welcome: Job) -> None:
    execution_id = welcome.push(Welcome(user_id=7, address=Address(city="Lyon", zip=1)))

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.payload is not None
    assert row.payload["user_id"] == 7
    assert row.payload["address"] == {"city": "Lyon", "zip": 1}


def test_the_validated_payload_is_what_gets_stored(jobs: Jobs, welcome: Job) -> None:
    """SPEC §1.1 ``schema``: the parsed value is stored, not the raw input."""
    execution_id = welcome.push({"user_id": "12", "score": 1})

    row = jobs.get_execution(execution_id)
    assert row is not None and row.payload is not None
    assert row.payload["user_id"] == 12
    assert row.payload["score"] == 1.0


def test_unknown_fields_are_dropped_by_default(jobs: Jobs, welcome: Job) -> None:
    """pydantic's default ``extra="ignore"``."""
    execution_id = welcome.push({"user_id": 1, "surprise": True})

    row = jobs.get_execution(execution_id)
    assert row is not None and row.payload is not None
    assert "surprise" not in row.payload


def test_unknown_fields_are_refused_when_the_schema_forbids_them(jobs: Jobs) -> None:
    strict = jobs.job("app.strict", schema=Strict)(_noop)

    with pytest.raises(PayloadError, match="surprise"):
        strict.push({"user_id": 1, "surprise": True})
    assert rows(jobs) == 0


def test_unknown_fields_are_kept_when_the_schema_allows_them(jobs: Jobs) -> None:
    open_job = jobs.job("app.open", schema=Open)(_noop)

    execution_id = open_job.push({"user_id": 1, "surprise": True})

    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.payload == {"user_id": 1, "surprise": True}


# databases that cannot be used


def _open(url: str) -> Jobs:
    return Jobs(url, config=JobsConfig(sweep_cron=NEVER, trim_cron=NEVER))


def test_a_database_in_a_missing_directory_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "dir" / "jobs.db"

    with pytest.raises(StoreError) as caught:
        _open(f"sqlite:///{path}")

    assert str(path) in str(caught.value)
    assert "directory" in str(caught.value)
    assert not path.parent.exists()


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    garbage = os.urandom(4096)
    path.write_bytes(garbage)

    with pytest.raises(StoreError) as caught:
        _open(f"sqlite:///{path}")

    assert str(path) in str(caught.value)
    assert "not" in str(caught.value) and "database" in str(caught.value)
    assert path.read_bytes() == garbage


@pytest.mark.sqlite_only
def test_a_database_from_a_newer_schema_version_is_refused(
    make_jobs: MakeJobs, db_url: str, db_path: Path
) -> None:
    make_jobs().close()
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA user_version = 99")
    connection.commit()
    connection.close()

    with pytest.raises(SchemaVersionError) as caught:
        _open(db_url)

    assert "upgrad" in str(caught.value)
    assert "99" in str(caught.value)
    assert isinstance(caught.value, StoreError)
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 99
    finally:
        connection.close()


def test_another_applications_table_of_the_same_name_is_left_alone(
    tmp_path: Path,
) -> None:
    """An unversioned file whose ``job_executions`` is not ours: refused at
    ``Jobs()``, not indexed, stamped or switched to WAL (SQLite would even index
    the missing columns, taking their double-quoted names for strings)."""
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE job_executions (id TEXT, done INTEGER)")
    connection.commit()
    connection.close()

    with pytest.raises(StoreError) as caught:
        _open(f"sqlite:///{path}")

    assert str(path) in str(caught.value)
    assert "job_executions" in str(caught.value)
    assert "another database" in str(caught.value)
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 0
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        names = connection.execute("SELECT name FROM sqlite_master").fetchall()
        assert names == [("job_executions",)]
    finally:
        connection.close()
