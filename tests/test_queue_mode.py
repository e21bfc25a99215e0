"""Queue mode through the real Redis (SPEC §4.1, §4.2, §4.4; DESIGN §2).

Every test has its own key prefix on the shared server and its own SQLite file.
Covers §12.4 #43-#45, §12.6 #57-#58 in queue mode, §12.10 #84-#87 with the Redis
transport, and the queue's own rules: JSON messages, consumers from ``start()``,
handler failures never reaching the queue, the redis lock store for cron.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from alepha_jobs import (
    JobContext,
    Jobs,
    PushItem,
    Retention,
    Retry,
    Rule,
)
from alepha_jobs.definition import Job
from alepha_jobs.dispatch.redis_queue import RedisQueue
from alepha_jobs.locks import RedisLockStore

from .conftest import race, wait_until
from .queue_support import (
    CountingRedisQueue,
    DecliningRedisQueue,
    MakeQueueJobs,
)
from .redis_service import queue_url

NAME = "queue.work"
HOUR = timedelta(hours=1)


class Work(BaseModel):
    n: int


class Recorder:
    """What a handler saw, readable from the test thread."""

    def __init__(self) -> None:
        self.payloads: list[int] = []
        self.threads: list[str] = []
        self.times: list[datetime] = []
        self.changed = threading.Condition()

    def record(self, ctx: JobContext[Work]) -> None:
        with self.changed:
            self.payloads.append(ctx.payload.n)
            self.threads.append(threading.current_thread().name)
            self.times.append(datetime.now(timezone.utc))


def work_job(jobs: Jobs, **options: Any) -> tuple[Job, Recorder]:
    recorder = Recorder()

    @jobs.job(NAME, schema=Work, **options)
    def work(ctx: JobContext[Work]) -> None:
        """Record the payload."""
        recorder.record(ctx)

    return work, recorder


def ready(client: Any, prefix: str) -> list[Any]:
    """The raw messages of the ready list, oldest first."""
    return [
        json.loads(m)
        for m in reversed(client.lrange(f"{prefix}:api:jobs:dispatch", 0, -1))
    ]


def delayed(client: Any, prefix: str) -> list[tuple[bytes, float]]:
    key = f"{prefix}:api:jobs:dispatch:delayed"
    return list(client.zrange(key, 0, -1, withscores=True))


# §12.4 push basics in queue mode


def test_a_push_runs_on_a_consumer_thread_and_the_row_is_deleted(
    make_queue_jobs: MakeQueueJobs,
) -> None:
    """#33 in queue mode: the handler gets the payload on an ``alepha-jobs-*``
    consumer thread, and the default retention deletes the row."""
    jobs = make_queue_jobs()
    work, seen = work_job(jobs)
    jobs.start()

    execution_id = work.push({"n": 42})

    assert wait_until(lambda: jobs.get_execution(execution_id) is None)
    assert seen.payloads == [42]
    assert seen.threads[0].startswith("alepha-jobs-queue-")


def test_queue_mode_runs_on_each_outbox_store(
    make_queue_jobs: MakeQueueJobs, db_url: str
) -> None:
    """The contract suite's stores: SQLite and a fresh Postgres schema."""
    jobs = make_queue_jobs(url=db_url)
    work, seen = work_job(jobs)
    jobs.start()

    ids = [work.push({"n": n}) for n in range(5)]

    assert wait_until(lambda: sorted(seen.payloads) == [0, 1, 2, 3, 4])
    assert wait_until(lambda: all(jobs.get_execution(i) is None for i in ids))


def test_push_many_hands_the_queue_one_batch_of_json_messages(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """#42, #43: one ``dispatch_many`` with three items, one JSON message each
    naming the job and the execution; a consuming runtime then runs all three."""
    queue = CountingRedisQueue(queue_url(prefix))
    producer = make_queue_jobs(dispatcher=queue)
    work, _ = work_job(producer)

    ids = work.push_many([{"n": 1}, {"n": 2}, PushItem({"n": 3})])

    assert len(ids) == 3
    assert queue.batches == [[(NAME, execution_id) for execution_id in ids]]
    assert ready(redis_client, prefix) == [
        {"job_name": NAME, "execution_id": execution_id} for execution_id in ids
    ]
    consumer = make_queue_jobs()
    _, seen = work_job(consumer)
    consumer.start()
    assert wait_until(lambda: len(seen.payloads) == 3)
    assert sorted(seen.payloads) == [1, 2, 3]
    assert wait_until(lambda: all(consumer.get_execution(i) is None for i in ids))


def test_the_mode_is_queue_with_a_queue_url_and_direct_without(
    make_queue_jobs: MakeQueueJobs, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """#44, #45: queue jobs report ``queue`` with ``queue=``, ``direct`` without;
    a cron job reports ``cron``; the start-up log counts the modes."""
    jobs = make_queue_jobs()
    work, _ = work_job(jobs)

    @jobs.job("queue.nightly", cron="0 3 * * *")
    def nightly(ctx: JobContext[None]) -> None:
        """Nothing."""

    direct = Jobs(f"sqlite:///{tmp_path}/direct.db")
    try:
        direct_work, _ = work_job(direct)
        assert direct_work.mode == "direct"
    finally:
        direct.close()
    assert work.mode == "queue"
    assert nightly.mode == "cron"
    with caplog.at_level(logging.INFO, logger="alepha_jobs"):
        jobs.start()
    assert "1 cron, 1 queue" in caplog.text


def test_start_without_consume_runs_no_consumer_and_leaves_messages_in_redis(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """A web process started with ``consume=False`` only sends."""
    jobs = make_queue_jobs()
    work, seen = work_job(jobs)
    jobs.start(consume=False)

    execution_id = work.push({"n": 1})

    assert not any(
        t.name.startswith("alepha-jobs-queue") for t in threading.enumerate()
    )
    assert ready(redis_client, prefix) == [
        {"job_name": NAME, "execution_id": execution_id}
    ]
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "pending"
    assert seen.payloads == []


def test_stop_ends_the_consumer_threads_and_keeps_later_messages(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """After ``stop()`` nothing here pops: a message another process pushes then
    waits in Redis (a stopped runtime itself no longer dispatches, SPEC §5.8)."""
    jobs = make_queue_jobs(concurrency=3)
    work, seen = work_job(jobs)
    jobs.start()
    work.push({"n": 1})
    assert wait_until(lambda: seen.payloads == [1])

    jobs.stop()
    consumers = [
        t for t in threading.enumerate() if t.name.startswith("alepha-jobs-queue")
    ]
    producer = make_queue_jobs()  # never started: pushes still go to Redis
    producer_work, _ = work_job(producer)
    execution_id = producer_work.push({"n": 2})

    assert consumers == []
    assert ready(redis_client, prefix) == [
        {"job_name": NAME, "execution_id": execution_id}
    ]
    assert seen.payloads == [1]


def test_messages_pushed_while_stopping_stay_in_redis(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """SPEC §5.8 in queue mode: while ``stop()`` drains a running handler, an
    idle consumer takes no new message (or returns the one it popped), so the
    message waits in Redis for another process instead of being dropped."""
    jobs = make_queue_jobs(concurrency=2)
    release = threading.Event()
    started = threading.Event()
    handled: list[int] = []

    @jobs.job(NAME, schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """The first run holds the drain open."""
        handled.append(ctx.payload.n)
        started.set()
        release.wait(10)

    jobs.start()
    work.push({"n": 1})
    assert started.wait(10)
    stopper = threading.Thread(target=jobs.stop)
    stopper.start()
    assert wait_until(lambda: jobs.stopping)
    producer = make_queue_jobs()
    producer_work, _ = work_job(producer)
    execution_id = producer_work.push({"n": 2})
    release.set()
    stopper.join(10)

    assert not stopper.is_alive()
    assert handled == [1]
    assert ready(redis_client, prefix) == [
        {"job_name": NAME, "execution_id": execution_id}
    ]
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "pending"


def test_a_delayed_push_waits_in_the_delay_set_and_runs_when_due(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """§4.4 delay tier: scored by the Redis server's clock; delivered by the
    consumers once due, never before ``scheduled_at``."""
    jobs = make_queue_jobs()
    work, seen = work_job(jobs)

    execution_id = work.push({"n": 7}, delay=1)

    members = delayed(redis_client, prefix)
    seconds, micros = redis_client.time()
    server_now = seconds * 1000 + micros / 1000
    assert len(members) == 1 and ready(redis_client, prefix) == []
    member, score = members[0]
    assert json.loads(member.split(b":", 1)[1]) == {
        "job_name": NAME,
        "execution_id": execution_id,
    }
    assert server_now < score <= server_now + 1000
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "scheduled" and row.scheduled_at

    jobs.start()
    assert wait_until(lambda: seen.payloads == [7])
    assert seen.times[0] >= row.scheduled_at
    assert wait_until(lambda: jobs.get_execution(execution_id) is None)
    assert delayed(redis_client, prefix) == []


class DeliveryCounting(RedisQueue):
    """The real transport, counting the messages its consumers took."""

    def __init__(self, url: str) -> None:
        super().__init__(url, default_concurrency=3)
        self.taken: list[bytes | str] = []

    def _handle(self, raw: bytes | str) -> None:
        self.taken.append(raw)
        super()._handle(raw)


def test_due_delayed_messages_are_delivered_once_across_consumers(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """§4.4: the ZREM is the claim, so six consumers in two runtimes polling one
    delay set move each due member to the ready list once."""
    queues = [DeliveryCounting(queue_url(prefix)) for _ in range(2)]
    runtimes = [make_queue_jobs(dispatcher=queue) for queue in queues]
    recorders = [work_job(jobs)[1] for jobs in runtimes]
    work = runtimes[0].registry[NAME]
    ids = work.push_many([PushItem({"n": n}, delay=0.5) for n in range(20)])
    assert len(delayed(redis_client, prefix)) == 20

    for jobs in runtimes:
        jobs.start()
    assert wait_until(lambda: sum(len(r.payloads) for r in recorders) == 20)
    assert wait_until(lambda: all(runtimes[0].get_execution(i) is None for i in ids))

    assert sorted(n for r in recorders for n in r.payloads) == list(range(20))
    assert sum(len(q.taken) for q in queues) == 20
    assert delayed(redis_client, prefix) == [] and ready(redis_client, prefix) == []


def test_handler_failures_never_reach_the_queue(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """#51 in queue mode: the failure is recorded on the row, the retry is a
    delayed message Redis holds, and the second attempt runs on its own."""
    jobs = make_queue_jobs(
        retry_backoff_base=0.12, retry_backoff_max=0.12, random=lambda: 1.0
    )
    attempts: list[datetime] = []

    @jobs.job(
        NAME, schema=Work, retry=Retry(1), retention=Retention(error=Rule(days=1))
    )
    def work(ctx: JobContext[Work]) -> None:
        """Always fails."""
        attempts.append(datetime.now(timezone.utc))
        raise RuntimeError("nope")

    jobs.start()
    pushed_at = datetime.now(timezone.utc)
    execution_id = work.push({"n": 1})

    def ended() -> bool:
        row = jobs.get_execution(execution_id)
        return row is not None and row.status == "error"

    assert wait_until(ended)
    row = jobs.get_execution(execution_id)
    assert row is not None and (row.attempt, row.error) == (2, "nope")
    assert len(attempts) == 2
    assert attempts[1] - pushed_at >= timedelta(milliseconds=100)
    assert ready(redis_client, prefix) == [] and delayed(redis_client, prefix) == []


def test_undecodable_messages_are_dropped_and_consumers_go_on(
    make_queue_jobs: MakeQueueJobs,
    prefix: str,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Messages are JSON, never unpickled: a pickle or garbage is logged and
    dropped, and the next real message still runs."""
    jobs = make_queue_jobs(concurrency=1)
    work, seen = work_job(jobs)
    key = f"{prefix}:api:jobs:dispatch"
    redis_client.lpush(key, pickle.dumps({"job_name": NAME, "execution_id": "x"}))
    redis_client.lpush(key, b"not json", b'{"job_name": 1}')

    with caplog.at_level(logging.WARNING, logger="alepha_jobs"):
        jobs.start()
        work.push({"n": 5})
        assert wait_until(lambda: seen.payloads == [5])

    assert caplog.text.count("undecodable queue message") == 3


# §12.6 inline pushes in queue mode


def test_an_inline_push_returns_after_the_handler_finished(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """#57: the caller's thread runs it; nothing goes through Redis."""
    jobs = make_queue_jobs()
    finished = threading.Event()

    @jobs.job(NAME, schema=Work, retention=Retention(ok=Rule(last=10)))
    def work(ctx: JobContext[Work]) -> None:
        """Takes 30 ms."""
        threading.Event().wait(0.03)
        finished.set()

    jobs.start()
    execution_id = work.push({"n": 1}, inline=True)

    assert finished.is_set()
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "ok"
    assert ready(redis_client, prefix) == [] and delayed(redis_client, prefix) == []


def test_an_inline_failure_raises_and_is_not_run_again(
    make_queue_jobs: MakeQueueJobs,
) -> None:
    """#58: the error reaches the caller, one ``error`` row, a sweep re-runs
    nothing."""
    jobs = make_queue_jobs()
    calls: list[int] = []

    @jobs.job(NAME, schema=Work)
    def work(ctx: JobContext[Work]) -> None:
        """Refused."""
        calls.append(ctx.payload.n)
        raise RuntimeError("provider refused")

    jobs.start()
    with pytest.raises(RuntimeError, match="provider refused"):
        work.push({"n": 1}, inline=True)
    jobs.sweep()
    assert jobs.drain(5)

    rows = jobs.executions(NAME).content
    assert [(r.status, r.error) for r in rows] == [("error", "provider refused")]
    assert calls == [1]


# §12.10 delay transport contract with the Redis transport


def test_a_declined_delay_leaves_the_row_for_the_sweep(
    make_queue_jobs: MakeQueueJobs, prefix: str
) -> None:
    """#84: declined once, nothing runs; once due, a sweep delivers it once."""
    queue = DecliningRedisQueue(queue_url(prefix))
    jobs = make_queue_jobs(dispatcher=queue)
    work, seen = work_job(jobs)
    jobs.start()
    now = datetime.now(timezone.utc)
    with freeze_time(now) as frozen:
        execution_id = work.push({"n": 1}, delay=HOUR)
        row = jobs.get_execution(execution_id)
        assert row is not None and row.status == "scheduled"

        frozen.tick(HOUR + timedelta(seconds=1))
        report = jobs.sweep()
        assert report.promoted == 1
        assert wait_until(lambda: jobs.get_execution(execution_id) is None)

    assert queue.declined == [(NAME, execution_id, 3600.0)]
    assert seen.payloads == [1]


@pytest.mark.slow
def test_a_declined_delay_runs_on_the_local_timer(
    make_queue_jobs: MakeQueueJobs, prefix: str
) -> None:
    """#85: sweep off, 2 s delay, declined: the local promoting timer dispatches
    it through Redis after ~2 s, and the row is deleted."""
    queue = DecliningRedisQueue(queue_url(prefix))
    jobs = make_queue_jobs(dispatcher=queue)
    work, seen = work_job(jobs)
    jobs.start()

    pushed_at = datetime.now(timezone.utc)
    execution_id = work.push({"n": 1}, delay=2)
    row = jobs.get_execution(execution_id)
    assert row is not None and row.scheduled_at is not None

    assert wait_until(lambda: seen.payloads == [1], timeout=15)
    assert len(queue.declined) == 1 and 1.9 < queue.declined[0][2] <= 2
    assert seen.times[0] >= row.scheduled_at
    assert seen.times[0] - pushed_at >= timedelta(seconds=1.99)
    assert wait_until(lambda: jobs.get_execution(execution_id) is None)


def test_an_early_delivery_claims_nothing(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """#86: Redis holds the 10-minute message; an early ``process_execution``
    leaves the row ``scheduled`` with attempt 0; once due, it claims and runs."""
    jobs = make_queue_jobs()
    work, seen = work_job(jobs)
    now = datetime.now(timezone.utc)
    with freeze_time(now) as frozen:
        execution_id = work.push({"n": 1}, delay=timedelta(minutes=10))
        assert len(delayed(redis_client, prefix)) == 1

        jobs.process_execution(NAME, execution_id)
        row = jobs.get_execution(execution_id)
        assert row is not None
        assert (row.status, row.attempt, row.started_at) == ("scheduled", 0, None)
        assert seen.payloads == []

        frozen.tick(timedelta(minutes=10))
        jobs.process_execution(NAME, execution_id)

    assert seen.payloads == [1]
    assert jobs.get_execution(execution_id) is None


def test_concurrent_promotions_of_one_row_dispatch_it_once(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """#87: two ``dispatch_scheduled`` calls race; one promotion, one message,
    one run."""
    jobs = make_queue_jobs()
    work, seen = work_job(jobs)

    now = datetime.now(timezone.utc)
    with freeze_time(now) as frozen:
        execution_id = work.push({"n": 1}, delay=60)
        frozen.tick(timedelta(seconds=61))
        failures = race(lambda: jobs.dispatch_scheduled(NAME, execution_id))

    assert failures == []
    assert ready(redis_client, prefix) == [
        {"job_name": NAME, "execution_id": execution_id}
    ]
    jobs.start()
    assert wait_until(lambda: jobs.get_execution(execution_id) is None)
    assert seen.payloads == [1]
    assert len(delayed(redis_client, prefix)) == 1  # the original: claims nothing


# cron in queue mode


def test_cron_locks_live_in_redis_under_the_queue_prefix(
    make_queue_jobs: MakeQueueJobs, prefix: str, redis_client: Any
) -> None:
    """With ``queue=`` the default lock store is Redis on the same server: the
    run lock is held there, under the queue's prefix, while the tick runs."""
    jobs = make_queue_jobs()
    keys_during_run: list[str] = []

    @jobs.job("queue.tick", cron="0 3 * * *")
    def tick(ctx: JobContext[None]) -> None:
        """Looks at the Redis keys of this test."""
        found = redis_client.scan_iter(match=f"{prefix}:*")
        keys_during_run.extend(k.decode() for k in found)

    assert isinstance(jobs.locks, RedisLockStore)
    assert jobs.locks.prefix == f"{prefix}:"
    tick.trigger()

    assert keys_during_run == [f"{prefix}:alepha.api.jobs.cron:queue.tick"]
    assert list(redis_client.scan_iter(match=f"{prefix}:*")) == []


def test_a_cron_retry_row_runs_through_the_queue(
    make_queue_jobs: MakeQueueJobs,
) -> None:
    """SPEC §6.4: a cron job with ``retry`` writes a row that a consumer runs."""
    jobs = make_queue_jobs()
    threads: list[str] = []

    @jobs.job("queue.tick", cron="0 3 * * *", retry=Retry(1))
    def tick(ctx: JobContext[None]) -> None:
        """Records its thread."""
        threads.append(threading.current_thread().name)

    jobs.start()
    tick.trigger()

    assert wait_until(lambda: len(threads) == 1)
    assert threads[0].startswith("alepha-jobs-queue-")
