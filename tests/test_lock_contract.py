"""The lock store contract (SPEC §6.2, §12.14 #127-#129), run against every store.

Memory, database and file stores read time through ``alepha_jobs.clock``, so frozen
time drives their expiry; Redis keeps its own clock, so its TTLs are real and short.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from alepha_jobs.errors import (
    ConfigurationError,
    InvalidArgumentError,
    LockError,
    StoreError,
)
from alepha_jobs.locks import (
    DatabaseLockStore,
    FileLockStore,
    LockStore,
    MemoryLockStore,
    RedisLockStore,
    owner_of,
)
from alepha_jobs.locks.postgres import PostgresLockStore
from alepha_jobs.store.postgres import PostgresStore
from alepha_jobs.store.sqlite import SqliteStore

from .conftest import wait_until
from .postgres_service import fresh_schema, url_for

REDIS_URL = "redis://127.0.0.1:6379/0"
KINDS = ["memory", "database", "file", "redis", "postgres"]
FROZEN_TTL = timedelta(seconds=10)
REDIS_TTL = timedelta(milliseconds=80)  # Redis expires on its own clock


def _redis_client() -> Any:
    """A client for the test Redis; skip if unreachable (fail if services required)."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as error:  # ImportError or any redis error
        reason = f"Redis at {REDIS_URL} is unreachable: {error}"
        if os.environ.get("ALEPHA_JOBS_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return client


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone, so Redis keys never meet another test's."""
    return f"alepha-jobs-test:{uuid.uuid4().hex}:"


@pytest.fixture
def store(kind: str, tmp_path: Path, prefix: str) -> Iterator[LockStore]:
    if kind == "memory":
        yield MemoryLockStore()
    elif kind == "database":
        outbox = SqliteStore(f"sqlite:///{tmp_path}/jobs.db")
        yield DatabaseLockStore(outbox)
        outbox.close()
    elif kind == "file":
        yield FileLockStore(tmp_path / "locks")
    elif kind == "postgres":
        with fresh_schema() as schema:
            pg_outbox = PostgresStore(url_for(schema))
            yield PostgresLockStore(pg_outbox)
            pg_outbox.close()
    else:
        client = _redis_client()
        with RedisLockStore(REDIS_URL) as redis_store:
            yield redis_store
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    with fresh_schema() as schema:
        yield schema


class Lapse:
    """Lets a TTL pass: frozen time for our clock, a real wait for Redis."""

    def __init__(self, store: LockStore, prefix: str, frozen: Any) -> None:
        self.store = store
        self.prefix = prefix
        self.frozen = frozen
        self.ttl = REDIS_TTL if frozen is None else FROZEN_TTL

    def elapse(self) -> None:
        """Return once ``ttl`` has passed for every key set before this call."""
        sentinel = self.prefix + "sentinel"
        self.store.set(sentinel, "sentinel", ttl=self.ttl)
        if self.frozen is not None:
            self.frozen.tick(self.ttl)
        assert wait_until(lambda: self.store.get(sentinel) is None, timeout=5)


@pytest.fixture
def lapse(kind: str, store: LockStore, prefix: str) -> Iterator[Lapse]:
    if kind == "redis":
        yield Lapse(store, prefix, None)
        return
    with freeze_time("2026-01-01 00:00:00") as frozen:
        yield Lapse(store, prefix, frozen)


# §12.14 #127


def test_delete_if_owner_deletes_only_for_the_owner(store: LockStore, prefix: str):
    """#127: owner-2 changes nothing; owner-1 deletes the key."""
    key = prefix + "run"
    store.set(key, "owner-1,2026-01-01T00:00:00.000Z")

    assert store.delete_if_owner(key, "owner-2") is False
    assert store.get(key) == "owner-1,2026-01-01T00:00:00.000Z"

    assert store.delete_if_owner(key, "owner-1") is True
    assert store.get(key) is None


@pytest.mark.parametrize(
    ("value", "owner_id", "deleted"),
    [
        ("owner-1", "owner-1", True),  # no comma: the whole value is the owner
        ("50%_off,token", "50%_off", True),
        ("owner-1,token", "owner", False),  # a prefix of the owner is not the owner
        ("owner-10,token", "owner-1", False),
        ("owner-1,token", "owner_1", False),  # no LIKE wildcards
        ("owner-1,token", "%", False),
        ("a,b,token", "a,b", False),  # the segment ends at the first comma
        ("owner-1,token", "", False),
    ],
)
def test_delete_if_owner_compares_the_segment_before_the_first_comma(
    store: LockStore, prefix: str, value: str, owner_id: str, deleted: bool
):
    """#127: only the exact text before the first comma is the owner."""
    key = prefix + "run"
    store.set(key, value)

    assert store.delete_if_owner(key, owner_id) is deleted
    assert store.get(key) == (None if deleted else value)


def test_delete_if_owner_of_a_missing_key_is_false(store: LockStore, prefix: str):
    assert store.delete_if_owner(prefix + "missing", "owner-1") is False


def test_delete_if_owner_of_an_expired_key_is_false(
    lapse: Lapse, store: LockStore, prefix: str
):
    """An expired key is absent, so nobody owns it any more."""
    key = prefix + "run"
    store.set(key, "owner-1,token", ttl=lapse.ttl)
    lapse.elapse()

    assert store.delete_if_owner(key, "owner-1") is False
    assert store.get(key) is None


# §12.14 #128


def test_set_nx_on_a_live_key_returns_the_existing_value_unchanged(
    store: LockStore, prefix: str
):
    """#128"""
    key = prefix + "instant"
    store.set(key, "owner-1,first", nx=True, ttl=60)

    assert store.set(key, "owner-2,second", nx=True, ttl=60) == "owner-1,first"
    assert store.get(key) == "owner-1,first"


def test_set_nx_on_an_absent_key_writes_and_returns_the_value(
    store: LockStore, prefix: str
):
    key = prefix + "instant"

    assert store.set(key, "owner-1,first", nx=True) == "owner-1,first"
    assert store.get(key) == "owner-1,first"


def test_set_without_nx_overwrites_and_returns_the_new_value(
    store: LockStore, prefix: str
):
    key = prefix + "run"
    store.set(key, "owner-1,first")

    assert store.set(key, "owner-2,second") == "owner-2,second"
    assert store.get(key) == "owner-2,second"


def test_set_nx_on_an_expired_key_takes_it(lapse: Lapse, store: LockStore, prefix: str):
    """The run lock of a run that outlived its TTL can be taken by another holder."""
    key = prefix + "run"
    store.set(key, "owner-1,first", nx=True, ttl=lapse.ttl)
    lapse.elapse()

    assert store.set(key, "owner-2,second", nx=True) == "owner-2,second"
    assert store.get(key) == "owner-2,second"


# §12.14 #129


def test_a_key_set_with_a_ttl_disappears_after_the_ttl(
    lapse: Lapse, store: LockStore, prefix: str
):
    """#129"""
    key = prefix + "run"
    store.set(key, "owner-1,token", ttl=lapse.ttl)
    assert store.get(key) == "owner-1,token"

    lapse.elapse()

    assert store.get(key) is None


def test_a_key_reset_without_a_ttl_does_not_inherit_the_old_ttl(
    lapse: Lapse, store: LockStore, prefix: str
):
    """#129: the new value must not vanish under its new holder."""
    key = prefix + "run"
    store.set(key, "owner-1,token", ttl=lapse.ttl)
    store.set(key, "owner-2,token")

    lapse.elapse()

    assert store.get(key) == "owner-2,token"


def test_a_key_taken_after_expiry_without_a_ttl_never_expires(
    lapse: Lapse, store: LockStore, prefix: str
):
    """#129 through set-if-absent: the replaced row keeps no expiry either."""
    key = prefix + "run"
    store.set(key, "owner-1,token", nx=True, ttl=lapse.ttl)
    lapse.elapse()
    store.set(key, "owner-2,token", nx=True)

    lapse.elapse()

    assert store.get(key) == "owner-2,token"


def test_a_key_reset_with_a_new_ttl_lives_for_the_new_ttl(
    lapse: Lapse, store: LockStore, prefix: str
):
    key = prefix + "run"
    store.set(key, "owner-1,token")
    store.set(key, "owner-2,token", ttl=lapse.ttl)

    lapse.elapse()

    assert store.get(key) is None


# reads and deletes


def test_get_of_a_missing_key_is_none(store: LockStore, prefix: str):
    assert store.get(prefix + "missing") is None


def test_delete_removes_every_given_key_and_ignores_missing_ones(
    store: LockStore, prefix: str
):
    first, second, kept = prefix + "a", prefix + "b", prefix + "c"
    for key in (first, second, kept):
        store.set(key, "owner-1,token")

    store.delete(first, second, prefix + "missing")
    store.delete()

    assert [store.get(key) for key in (first, second, kept)] == [
        None,
        None,
        "owner-1,token",
    ]


# races


def test_concurrent_set_nx_from_eight_threads_has_exactly_one_winner(
    store: LockStore, prefix: str
):
    key = prefix + "instant"
    start = threading.Barrier(8)
    results: dict[int, str] = {}

    def contend(index: int) -> None:
        start.wait(timeout=10)
        results[index] = store.set(key, f"thread-{index},token", nx=True, ttl=60)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 8
    winners = [i for i, value in results.items() if value == f"thread-{i},token"]
    assert len(winners) == 1
    assert set(results.values()) == {f"thread-{winners[0]},token"}
    assert store.get(key) == f"thread-{winners[0]},token"


def _race_in_child(
    kind: str, target: str, start: Any, results: Any, index: int
) -> None:
    """Runs in a spawned process: open the shared store, SET NX, report the value."""
    outbox: Any = None
    if kind == "database":
        outbox = SqliteStore(target)
        store: LockStore = DatabaseLockStore(outbox)
    elif kind == "postgres":
        outbox = PostgresStore(target)
        store = PostgresLockStore(outbox)
    else:
        store = FileLockStore(target)
    try:
        start.wait(timeout=60)
        value = store.set("race", f"process-{index},token", nx=True, ttl=60)
        results.put((index, value))
    except BaseException as error:
        results.put((index, f"error: {error!r}"))
        raise
    finally:
        store.close()
        if outbox is not None:
            outbox.close()


@pytest.mark.slow
@pytest.mark.parametrize("shared_kind", ["database", "file", "postgres"])
def test_concurrent_set_nx_from_four_processes_has_exactly_one_winner(
    shared_kind: str, tmp_path: Path, request: pytest.FixtureRequest
):
    if shared_kind == "database":
        target = f"sqlite:///{tmp_path}/jobs.db"
        SqliteStore(target).close()  # create the schema before the race
    elif shared_kind == "postgres":
        target = url_for(request.getfixturevalue("postgres_schema"))
        PostgresStore(target).close()
    else:
        target = str(tmp_path / "locks")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=_race_in_child, args=(shared_kind, target, start, results, i)
        )
        for i in range(4)
    ]
    for process in processes:
        process.start()

    try:
        values = dict(results.get(timeout=60) for _ in processes)
    except queue.Empty:
        values = {}
    for process in processes:
        process.join(timeout=60)

    assert len(values) == 4, values
    winners = [i for i, value in values.items() if value == f"process-{i},token"]
    assert len(winners) == 1, values
    assert set(values.values()) == {f"process-{winners[0]},token"}
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]


# housekeeping and edges


@pytest.mark.parametrize(
    "kind", ["memory", "database", "file", "postgres"], indirect=True
)
def test_prune_removes_only_expired_keys(lapse: Lapse, store: LockStore, prefix: str):
    store.set(prefix + "old", "owner-1,token", ttl=lapse.ttl)
    store.set(prefix + "kept", "owner-1,token")
    lapse.frozen.tick(lapse.ttl)

    assert store.prune() == 1
    assert store.prune() == 0
    assert store.get(prefix + "kept") == "owner-1,token"


def test_database_store_keeps_its_rows_in_job_locks_of_the_outbox(tmp_path: Path):
    """The row's expiry is cleared by a write without a TTL (#129), in the table."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    outbox = SqliteStore(url)
    store = DatabaseLockStore(outbox)

    def rows() -> list[tuple[str, str, str | None]]:
        with sqlite3.connect(tmp_path / "jobs.db") as connection:
            return connection.execute("SELECT * FROM job_locks").fetchall()

    with freeze_time("2026-01-01 00:00:00"):
        store.set("run", "owner-1,token", ttl=90)
        assert rows() == [("run", "owner-1,token", "2026-01-01T00:01:30.000Z")]
        store.set("run", "owner-2,token")
        assert rows() == [("run", "owner-2,token", None)]
    outbox.close()


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (1.5, timedelta(seconds=1.5)),
        ("2 min", timedelta(minutes=2)),
        (timedelta(milliseconds=0.2), timedelta(milliseconds=1)),  # rounded up
    ],
)
def test_ttl_accepts_durations_and_rounds_up_to_milliseconds(
    ttl: Any, expected: timedelta
):
    store = MemoryLockStore()
    with freeze_time("2026-01-01 00:00:00") as frozen:
        store.set("run", "owner-1,token", ttl=ttl)
        frozen.tick(expected - timedelta(milliseconds=1))
        assert store.get("run") == "owner-1,token"
        frozen.tick(timedelta(milliseconds=1))
        assert store.get("run") is None


@pytest.mark.parametrize("ttl", [0, -1, timedelta(0), "soon"])
def test_a_ttl_that_is_not_a_positive_duration_is_refused(ttl: Any):
    with pytest.raises(InvalidArgumentError, match="ttl"):
        MemoryLockStore().set("run", "owner-1,token", ttl=ttl)


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.set("run", 1),
        lambda store: store.get(None),
        lambda store: store.delete("run", 2),
        lambda store: store.delete_if_owner("run", None),
    ],
)
def test_non_text_keys_and_values_are_refused(call: Callable[[LockStore], Any]):
    with pytest.raises(InvalidArgumentError, match="must be a str"):
        call(MemoryLockStore())


def test_owner_of_is_the_text_before_the_first_comma():
    assert [owner_of(v) for v in ("a,b,c", "a", ",a", "")] == ["a", "a", "", ""]


def test_an_unreachable_redis_is_a_lock_error():
    pytest.importorskip("redis")
    store = RedisLockStore("redis://127.0.0.1:1/0")

    with pytest.raises(LockError, match="Redis lock store") as raised:
        store.get("run")

    assert isinstance(raised.value, StoreError)
    assert raised.value.__cause__ is not None
    store.close()


def test_an_unusable_lock_directory_is_a_lock_error(tmp_path: Path):
    (tmp_path / "taken").write_text("a file, not a directory")

    with pytest.raises(LockError, match="lock directory"):
        FileLockStore(tmp_path / "taken" / "locks")


def test_a_damaged_lock_file_reads_as_absent_and_can_be_retaken(tmp_path: Path):
    store = FileLockStore(tmp_path)
    store.set("run", "owner-1,token")
    (damaged,) = tmp_path.glob("*.json")
    damaged.write_text("{not json")

    assert store.get("run") is None
    assert store.set("run", "owner-2,token", nx=True) == "owner-2,token"


def test_redis_store_without_the_redis_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(ConfigurationError, match=r"pip install 'alepha-jobs\[redis\]'"):
        RedisLockStore(REDIS_URL)


def test_redis_store_leaves_a_given_client_open(prefix: str):
    client = _redis_client()
    RedisLockStore(client).close()

    assert client.ping() is True
    client.close()
