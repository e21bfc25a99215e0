"""Redis restarted while a queue-mode runtime runs (issue 6).

The test starts its own ``redis-server`` on a free port, without persistence,
and kills it: whatever the queue held is gone, the worst case. Pushes still write
their rows (an immediate push raises, as SPEC §2.1 says); consumers log, back
off and reconnect without raising out of their threads; the sweep delivers every
row whose message was lost. No row is lost and nothing runs twice.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import DispatchError, JobContext, Jobs, JobsConfig

from .conftest import NEVER, wait_until
from .redis_service import PrivateRedis

pytestmark = pytest.mark.slow


class Work(BaseModel):
    n: int


@pytest.fixture
def server() -> Any:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.kill()


def test_a_redis_restart_loses_no_row(
    tmp_path: Path,
    server: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escaped: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    config = JobsConfig(sweep_cron=NEVER, trim_cron=NEVER, stale_threshold=0)
    jobs = Jobs(
        f"sqlite:///{tmp_path}/jobs.db",
        queue=f"{server.url}?prefix=restart&concurrency=2",
        config=config,
    )
    runs: Counter[int] = Counter()

    @jobs.job("queue.work", schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Count the runs of each payload."""
        runs[ctx.payload.n] += 1

    caplog.set_level(logging.INFO, logger="alepha_jobs")
    try:
        jobs.start()
        work.push({"n": 1})
        assert wait_until(lambda: runs[1] == 1)
        held = work.push({"n": 2}, delay=1)  # its message dies with the server

        server.kill()
        with pytest.raises(DispatchError, match=f"127.0.0.1:{server.port}"):
            work.push({"n": 3})
        assert wait_until(lambda: "consumers retry with backoff" in caplog.text)

        server.start()  # same port, empty
        assert wait_until(lambda: "reachable again" in caplog.text, timeout=15)
        work.push({"n": 4})
        assert wait_until(lambda: runs[4] == 1)

        row = jobs.get_execution(held)
        assert row is not None and row.status == "scheduled" and row.scheduled_at
        due = row.scheduled_at
        assert wait_until(lambda: datetime.now(timezone.utc) >= due)
        report = jobs.sweep()
        # stale_threshold=0: the row promoted in this sweep may count as stale
        # too; the claim guard still runs it once (checked below)
        assert report.promoted == 1 and report.redispatched >= 1
        assert wait_until(lambda: sum(runs.values()) == 4)
        assert jobs.drain(10)
    finally:
        jobs.close()

    assert runs == Counter({1: 1, 2: 1, 3: 1, 4: 1})
    leftover = Jobs(f"sqlite:///{tmp_path}/jobs.db", config=config)
    try:
        assert leftover.executions().total_elements == 0
    finally:
        leftover.close()
    assert escaped == []
    warnings = [r for r in caplog.records if "consumers retry" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per thread or try
