"""What needs a Postgres server of its own (issue 4): a real restart while jobs
run, an outage longer than the pool waits, and password authentication.

The server is a private throwaway one (tests/postgres_cluster.py), never the shared
test server, which others use at the same time and which trusts every local user.
``pg_terminate_backend`` of the library's backends is covered in
tests/test_postgres_connection.py; here the whole server goes away and comes back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    ConfigurationError,
    JobContext,
    Jobs,
    JobsConfig,
    Retention,
    Rule,
    StoreError,
)

from .conftest import NEVER, wait_until
from .outbox import connect
from .postgres_cluster import Cluster, private_cluster

JOB = "pg.restart"
ROUNDS = 2
PER_ROUND = 12


class Work(BaseModel):
    n: int


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with private_cluster() as started:
        yield started


@pytest.mark.slow
def test_jobs_survive_a_server_restart_while_they_run(
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stop the server while handlers run and a push is waiting, start it again:
    every job runs once and ends ``ok``, the push lands, no thread raises."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: escaped.append(a.exc_value))
    caplog.set_level(logging.WARNING, logger="alepha_jobs")
    config = JobsConfig(
        sweep_cron=NEVER,
        trim_cron=NEVER,
        pickup_delay=0.1,
        direct_max_concurrency=4,
        run_timeout=1.5,  # a lease beat every 0.5 s, during the outage too
    )
    jobs = Jobs(f"{cluster.url}?schema=restart", config=config)
    gates = [threading.Event() for _ in range(ROUNDS + 1)]
    calls: list[int] = []
    lock = threading.Lock()

    @jobs.job(JOB, schema=Work, retention=Retention(ok=Rule(last=1000)))
    def work(ctx: JobContext[Work]) -> None:
        """Wait for this job's round, then record the payload."""
        assert gates[ctx.payload.n // PER_ROUND].wait(30)
        with lock:
            calls.append(ctx.payload.n)

    try:
        jobs.start()
        work.push_many([{"n": n} for n in range(ROUNDS * PER_ROUND)])
        gates[0].set()
        assert wait_until(lambda: len(calls) >= PER_ROUND, 30)

        # Down: four handlers are blocked in round 1, the rest are queued, the
        # pickup and the lease keep polling, and a push comes in.
        cluster.stop()
        late: list[str] = []
        pusher = threading.Thread(
            target=lambda: late.append(work.push({"n": ROUNDS * PER_ROUND}))
        )
        pusher.start()
        threading.Event().wait(1.0)  # the outage lasts a second
        cluster.start()
        pusher.join(60)
        for gate in gates:
            gate.set()

        assert late, "the push made during the outage never returned"
        assert wait_until(lambda: len(calls) == ROUNDS * PER_ROUND + 1, 60)
        assert jobs.drain(30)
        with connect(jobs) as raw:
            rows = raw.execute(
                "SELECT status, attempt, count(*) FROM job_executions GROUP BY 1, 2"
            )
    finally:
        jobs.close()

    assert sorted(calls) == list(range(ROUNDS * PER_ROUND + 1))
    assert rows == [("ok", 1, ROUNDS * PER_ROUND + 1)]
    assert escaped == []
    print(
        "\nrestart: warnings logged",
        sorted({getattr(r, "event", r.getMessage()[:40]) for r in caplog.records}),
    )


@pytest.mark.slow
def test_background_threads_log_an_outage_and_never_raise(
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``pool_timeout`` short, statements of the pickup and the lease fail
    while the server is down: each failure is a logged warning, the threads go
    on, and the running job still ends ``ok`` once the server is back."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: escaped.append(a.exc_value))
    caplog.set_level(logging.WARNING, logger="alepha_jobs")
    config = JobsConfig(
        sweep_cron=NEVER, trim_cron=NEVER, pickup_delay=0.1, run_timeout=1.5
    )
    jobs = Jobs(f"{cluster.url}?schema=outage&pool_timeout=0.2", config=config)
    gate, started = threading.Event(), threading.Event()

    @jobs.job(JOB, schema=Work, retention=Retention(ok=Rule(last=10)))
    def work(ctx: JobContext[Work]) -> None:
        """Block until the outage is over."""
        started.set()
        assert gate.wait(30)

    def failed(event: str) -> bool:
        return any(getattr(r, "event", None) == event for r in caplog.records)

    def reachable() -> bool:
        try:
            return jobs.get_execution(execution_id) is not None
        except StoreError:
            return False

    try:
        jobs.start()
        execution_id = work.push({"n": 1})
        assert started.wait(10)
        cluster.stop()

        with pytest.raises(StoreError, match="no connection became available"):
            work.push({"n": 2})
        assert wait_until(lambda: failed("pickup.failed"), 30)
        assert wait_until(lambda: failed("lease.failed"), 30)
        cluster.start()
        assert wait_until(reachable, 30)
        gate.set()
        assert jobs.drain(30)
        row = jobs.get_execution(execution_id)
    finally:
        jobs.close()

    assert row is not None and row.status == "ok"
    assert escaped == []
    ours = [r for r in caplog.records if r.name.startswith("alepha_jobs")]
    assert all(record.levelno < logging.ERROR for record in ours)


def test_a_wrong_password_is_a_store_error_that_never_shows_a_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 4 bad input: wrong credentials are named with host, port and a hint;
    neither the wrong password nor the right one appears in a message or a log."""
    caplog.set_level(logging.INFO, logger="alepha_jobs")
    with private_cluster(password="right-horse") as cluster:
        wrong = cluster.url.replace("right-horse", "wrong-staple")
        with pytest.raises(StoreError) as caught:
            Jobs(wrong)
        with pytest.raises(ConfigurationError) as bad_size:
            Jobs(f"{cluster.url}?pool_max_size=0")

        jobs = Jobs(f"{cluster.url}?schema=auth")
        try:
            jobs.start()
            shown = jobs.store.url
        finally:
            jobs.close()

    message = str(caught.value)
    assert message.startswith(f"Postgres at 127.0.0.1:{cluster.port}/postgres: ")
    assert 'password authentication failed for user "postgres"' in message
    assert "check the user name and password" in message
    assert (
        shown
        == f"postgresql://postgres:***@127.0.0.1:{cluster.port}/postgres?schema=auth"
    )
    texts = [message, str(caught.value.__cause__), str(bad_size.value), shown]
    texts += [record.getMessage() for record in caplog.records]
    assert not [text for text in texts if "horse" in text or "staple" in text]
