"""Bad input in queue mode: a clear JobsError at the call, naming what is wrong
and how to fix it, and nothing written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    ConfigurationError,
    DispatchError,
    JobContext,
    Jobs,
    JobsConfig,
    JobsError,
    QueueError,
)

from .conftest import NEVER
from .redis_service import free_port, queue_url

QUIET = {"sweep_cron": NEVER, "trim_cron": NEVER}


class Work(BaseModel):
    n: int


def register(jobs: Jobs) -> Any:
    @jobs.job("queue.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Nothing."""

    return work


@pytest.mark.parametrize(
    "url",
    [
        "amqp://localhost:5672/",
        "http://localhost:6379",
        "unix:///tmp/redis.sock",
        "localhost:6379",
    ],
)
def test_a_queue_url_that_is_not_redis_is_refused_before_anything_is_written(
    tmp_path: Path, url: str
) -> None:
    database = tmp_path / "jobs.db"
    with pytest.raises(ConfigurationError) as caught:
        Jobs(f"sqlite:///{database}", queue=url, config=JobsConfig(**QUIET))

    message = str(caught.value)
    assert url in message and "redis://" in message
    assert not database.exists()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("concurrency=0", "concurrency"),
        ("concurrency=many", "concurrency"),
        ("prefix=", "prefix"),
    ],
)
def test_malformed_queue_options_are_refused(
    tmp_path: Path, query: str, named: str
) -> None:
    _refused(tmp_path, f"redis://127.0.0.1:6379/0?{query}", named)


def test_a_queue_database_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "redis://127.0.0.1:6379/jobs?prefix=x", "'jobs' is not a number")


def _refused(tmp_path: Path, url: str, named: str) -> None:
    database = tmp_path / "jobs.db"
    with pytest.raises(ConfigurationError, match=named):
        Jobs(
            f"sqlite:///{database}",
            queue=url,
            config=JobsConfig(**QUIET),
        )
    assert not database.exists()


def test_without_redis_py_the_error_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    database = tmp_path / "jobs.db"

    with pytest.raises(ConfigurationError) as caught:
        Jobs(f"sqlite:///{database}", queue="redis://127.0.0.1:6379/0")

    assert "pip install 'alepha-jobs[redis]'" in str(caught.value)
    assert isinstance(caught.value, JobsError)
    assert not database.exists()


def test_queue_and_a_custom_dispatcher_are_refused_together(tmp_path: Path) -> None:
    from .conftest import RecordingDispatcher

    with pytest.raises(ConfigurationError, match="not both"):
        Jobs(
            f"sqlite:///{tmp_path}/jobs.db",
            queue="redis://127.0.0.1:6379/0",
            dispatcher=RecordingDispatcher(),
        )


def test_an_unreachable_redis_at_start_names_host_and_port(tmp_path: Path) -> None:
    """``start()`` fails fast, names the server, starts nothing, and can be
    retried once Redis is there."""
    port = free_port()  # nothing listens there
    jobs = Jobs(
        f"sqlite:///{tmp_path}/jobs.db",
        queue=f"redis://127.0.0.1:{port}/0",
        config=JobsConfig(**QUIET),
    )
    try:
        register(jobs)
        with pytest.raises(QueueError) as caught:
            jobs.start()

        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "start Redis" in str(caught.value)
        assert isinstance(caught.value, JobsError)
        with pytest.raises(QueueError):
            jobs.start(consume=False)  # still not started: it tries again
    finally:
        jobs.close()


def test_a_push_whose_dispatch_fails_raises_and_keeps_the_row(tmp_path: Path) -> None:
    """SPEC §2.1: the row is written first; the failed send reaches the caller as
    a DispatchError naming the server, and the row stays ``pending`` for the
    sweep. A delayed push (the safe variant) only logs."""
    port = free_port()
    jobs = Jobs(
        f"sqlite:///{tmp_path}/jobs.db",
        queue=f"redis://127.0.0.1:{port}/0",
        config=JobsConfig(**QUIET),
    )
    try:
        work = register(jobs)
        with pytest.raises(DispatchError) as caught:
            work.push({"n": 1})
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "sweep" in str(caught.value)

        delayed_id = work.push({"n": 2}, delay=60)

        rows = {r.status: r for r in jobs.executions("queue.work").content}
        assert sorted(rows) == ["pending", "scheduled"]
        assert rows["scheduled"].id == delayed_id
    finally:
        jobs.close()


def test_a_queue_prefix_isolates_runtimes_on_one_server(
    tmp_path: Path, prefix: str
) -> None:
    """The ``prefix`` option is how several applications (or test runs) share one
    Redis server; it never reaches redis-py."""
    jobs = Jobs(
        f"sqlite:///{tmp_path}/jobs.db",
        queue=queue_url(prefix, concurrency=3),
        config=JobsConfig(**QUIET),
    )
    try:
        from alepha_jobs.dispatch.redis_queue import RedisQueue

        assert isinstance(jobs.dispatcher, RedisQueue)
        assert jobs.dispatcher.ready_key == f"{prefix}:api:jobs:dispatch"
        assert jobs.dispatcher.url.concurrency == 3
        assert "prefix" not in jobs.dispatcher.url.redis_url
        jobs.dispatcher.client.ping()
    finally:
        jobs.close()


def test_error_messages_never_show_the_redis_password(tmp_path: Path) -> None:
    for url in ("redis://:s3cret@127.0.0.1:6379/0?concurrency=0", "amqp://u:s3cret@h/"):
        with pytest.raises(ConfigurationError) as caught:
            Jobs(f"sqlite:///{tmp_path}/jobs.db", queue=url)
        assert "s3cret" not in str(caught.value)
        assert "***" in str(caught.value)
