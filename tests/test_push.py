"""Pushing to queue jobs in direct mode: SPEC §2.1, §2.2 and §12.4 (#33-#44).
Pickup across runtimes (DESIGN §8.10) and pushes inside the caller's
transaction (§8.7) are in test_push_transactional.py."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from freezegun import freeze_time

from alepha_jobs import (
    InvalidArgumentError,
    JobContext,
    JobNotFoundError,
    JobUsageError,
    PayloadError,
    PushItem,
    Retention,
    Rule,
)
from alepha_jobs.pushing import prepare

from .conftest import MakeJobs, RecordingDispatcher
from .push_support import Num, count_rows

FROZEN = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
log = logging.getLogger("tests.push")


def test_handler_receives_the_payload_and_the_row_is_deleted(
    make_jobs: MakeJobs,
) -> None:
    """#33: the default queue retention does not keep successes."""
    jobs = make_jobs()
    received: list[Any] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Record the payload."""
        received.append(ctx.payload)

    jobs.start()
    execution_id = work.push({"n": 42})

    assert jobs.drain(5)
    assert received == [Num(n=42)]
    assert jobs.get_execution(execution_id) is None


@pytest.mark.parametrize(
    "rule", [Rule(last=10), Rule(days=7)], ids=["last-10", "days-7"]
)
def test_a_job_that_keeps_successes_leaves_an_ok_row(
    make_jobs: MakeJobs, rule: Rule
) -> None:
    """#34, #35."""
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num, retention=Retention(ok=rule))
    def work(ctx: JobContext[Num]) -> None:
        """Do nothing."""

    jobs.start()
    execution_id = work.push({"n": 1})

    assert jobs.drain(5)
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "ok"
    assert row.key is None
    assert row.completed_at is not None


def test_an_ok_row_stores_the_handlers_log_lines(make_jobs: MakeJobs) -> None:
    """#36."""
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num, retention=Retention(ok=Rule(last=10)))
    def work(ctx: JobContext[Num]) -> None:
        """Log twice."""
        log.warning("first line for %d", ctx.payload.n)
        log.error("second line")

    jobs.start()
    execution_id = work.push({"n": 5})

    assert jobs.drain(5)
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "ok"
    messages = [entry["message"] for entry in row.logs or []]
    assert "first line for 5" in messages
    assert "second line" in messages


def test_push_returns_before_the_handler_runs(make_jobs: MakeJobs) -> None:
    """§4.1: in direct mode the caller's push does not wait for the handler."""
    jobs = make_jobs()
    gate = threading.Event()
    finished = threading.Event()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Wait for the test to open the gate."""
        gate.wait(10)
        finished.set()

    jobs.start()
    execution_id = work.push({"n": 1})

    assert not finished.is_set()
    row = jobs.get_execution(execution_id)
    assert row is not None and row.status in ("pending", "running")
    gate.set()
    assert jobs.drain(5)
    assert finished.is_set()


def test_a_push_runs_on_a_direct_worker_thread_and_the_mode_is_direct(
    make_jobs: MakeJobs,
) -> None:
    """#44 (and the direct half of #45)."""
    jobs = make_jobs()
    threads: list[str] = []

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Note the thread."""
        threads.append(threading.current_thread().name)

    assert jobs.effective_mode("app.work") == "direct"
    assert jobs.registry["app.work"].mode == "direct"
    assert work.mode == "direct"

    jobs.start()
    execution_id = work.push({"n": 1})

    assert jobs.drain(5)
    assert len(threads) == 1
    assert threads[0].startswith("alepha-jobs-direct")
    assert threads[0] != threading.current_thread().name
    assert jobs.get_execution(execution_id) is None


# errors before anything is written (§2.1.1 steps 1-2)


def test_push_to_an_unknown_job_names_it(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    with pytest.raises(JobNotFoundError, match="Job not registered: app.missing"):
        jobs.push("app.missing", {"n": 1})


def test_push_to_a_cron_job_says_to_use_trigger(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    @jobs.job("app.nightly", cron="0 3 * * *")
    def nightly(ctx: JobContext[None]) -> None:
        """Nightly."""

    with pytest.raises(JobUsageError, match="not queue-mode") as caught:
        jobs.push("app.nightly", {"n": 1})
    assert "trigger()" in str(caught.value)


def test_an_invalid_payload_raises_and_writes_nothing(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    with pytest.raises(PayloadError, match="n"):
        work.push({"n": "not a number"})
    assert count_rows(jobs) == 0
    assert recording.dispatched == []


def test_the_stored_payload_is_the_validated_one(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§1.1 schema: the parsed value is stored, not the raw input."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": "12"})

    row = jobs.get_execution(execution_id)
    assert row is not None and row.payload == {"n": 12}


# keys (§2.1.2, #37-#39)


def test_a_second_keyed_push_returns_the_same_id_without_dispatching(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    first = work.push({"n": 1}, key="k")
    second = work.push({"n": 2}, key="k")

    assert second == first
    assert recording.dispatched == [("app.work", first, 0)]
    assert count_rows(jobs) == 1
    row = jobs.get_execution(first)
    assert row is not None and row.payload == {"n": 1}


def test_two_delayed_pushes_with_one_key_return_one_id(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#37."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    first = work.push({"n": 1}, key="k", delay=timedelta(hours=1))
    second = work.push({"n": 1}, key="k", delay=timedelta(hours=1))

    assert second == first
    assert len(recording.dispatched) == 1
    assert count_rows(jobs) == 1


def test_concurrent_pushes_with_one_key_create_one_row(make_jobs: MakeJobs) -> None:
    """#38."""
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs in this test."""

    barrier = threading.Barrier(5)
    ids: list[str] = []
    errors: list[BaseException] = []

    def push() -> None:
        barrier.wait(5)
        try:
            ids.append(work.push({"n": 1}, key="same", delay=3600))
        except BaseException as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=push) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert len(ids) == 5
    assert len(set(ids)) == 1
    assert count_rows(jobs) == 1


def test_a_keyed_insert_that_loses_to_another_writer_returns_the_winner(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#39: the store's keyed insert reports ``created=False`` and the winner id."""
    winner_side = make_jobs(dispatcher=recording)
    loser_side = make_jobs(dispatcher=RecordingDispatcher())
    for jobs in (winner_side, loser_side):

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Never runs."""

    winner = winner_side.push("app.work", {"n": 1}, key="k", delay=3600)
    definition = loser_side.definition("app.work")
    assert definition is not None
    row = prepare(definition, {"n": 2}, key="k", delay=3600)

    assert loser_side.store.insert_keyed(row) == (winner, False)
    assert count_rows(loser_side) == 1


@pytest.mark.parametrize("ending", ["deleted", "ok", "error", "cancelled"])
def test_a_key_is_free_again_once_its_row_has_ended(
    make_jobs: MakeJobs, ending: str
) -> None:
    """§2.1.2: a key deduplicates in-flight work, not completed work."""
    jobs = make_jobs()
    keep_ok = Retention(ok=Rule(last=10)) if ending == "ok" else None
    second_ran = threading.Event()

    @jobs.job("app.work", schema=Num, retention=keep_ok)
    def work(ctx: JobContext[Num]) -> None:
        """Fail on zero; note the second push."""
        if ctx.payload.n == 0:
            raise RuntimeError("zero")
        if ctx.payload.n == 2:
            second_ran.set()

    jobs.start()
    if ending == "cancelled":
        first = work.push({"n": 1}, key="k", delay=3600)
        work.cancel(first)
    else:
        first = work.push({"n": 0 if ending == "error" else 1}, key="k")
        assert jobs.drain(5)

    second = work.push({"n": 2}, key="k")

    assert second != first
    assert second_ran.wait(5)
    ended = jobs.get_execution(first)
    if ending == "deleted":
        assert ended is None
    else:
        assert ended is not None and ended.status == ending and ended.key is None


# delays (§2.1 options, #40, #41)


def test_a_delayed_push_writes_a_scheduled_row_and_does_not_run(
    make_jobs: MakeJobs,
) -> None:
    """#40."""
    calls: list[int] = []
    with freeze_time(FROZEN):
        jobs = make_jobs()

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Count."""
            calls.append(ctx.payload.n)

        jobs.start()
        execution_id = work.push({"n": 1}, delay=timedelta(hours=1))
        jobs.sweep()

        row = jobs.get_execution(execution_id)
        assert row is not None
        assert row.status == "scheduled"
        assert row.scheduled_at == FROZEN + timedelta(hours=1)
        assert jobs.timekeeper.armed("promotion") == 1
        assert calls == []


def test_a_thirty_day_delay_arms_no_timer_and_stays_scheduled(
    make_jobs: MakeJobs,
) -> None:
    """#41: beyond the 24 h timer ceiling the sweep delivers it, not a timer."""
    calls: list[int] = []
    with freeze_time(FROZEN) as frozen:
        jobs = make_jobs()

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Count."""
            calls.append(ctx.payload.n)

        jobs.start()
        execution_id = work.push({"n": 1}, delay=timedelta(days=30))
        frozen.tick(timedelta(days=2))
        jobs.timekeeper.poke()
        jobs.sweep()

        assert jobs.drain(1)
        assert jobs.timekeeper.armed("promotion") == 0
        row = jobs.get_execution(execution_id)
        assert row is not None and row.status == "scheduled"
        assert row.scheduled_at == FROZEN + timedelta(days=30)
        assert calls == []


def test_scheduled_at_wins_over_delay(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    with freeze_time(FROZEN):
        jobs = make_jobs(dispatcher=recording)

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Never runs."""

        at = FROZEN + timedelta(hours=2)
        execution_id = work.push({"n": 1}, delay=60, scheduled_at=at)

        row = jobs.get_execution(execution_id)
        assert row is not None
        assert row.status == "scheduled"
        assert row.scheduled_at == at
        assert recording.dispatched == [("app.work", execution_id, 7200)]


def test_a_zero_delay_still_writes_a_scheduled_row(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.1.1 step 5: any given delay counts, zero included."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    execution_id = work.push({"n": 1}, delay=0)

    row = jobs.get_execution(execution_id)
    assert row is not None and row.status == "scheduled"


def test_a_past_scheduled_at_is_simply_due(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    ran = threading.Event()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Signal."""
        ran.set()

    jobs.start()
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    execution_id = work.push({"n": 1}, scheduled_at=past)

    assert ran.wait(5)
    assert jobs.drain(5)
    assert jobs.get_execution(execution_id) is None


def test_a_naive_scheduled_at_is_refused_and_nothing_is_written(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """DESIGN §3: naive datetimes are refused, never guessed."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    with pytest.raises(InvalidArgumentError, match="naive"):
        work.push({"n": 1}, scheduled_at=datetime(2030, 1, 1))
    assert count_rows(jobs) == 0


# push_many (§2.2, #42)


def test_push_many_returns_one_id_per_payload_and_runs_them_all(
    make_jobs: MakeJobs,
) -> None:
    """#42."""
    jobs = make_jobs()
    seen: list[int] = []
    lock = threading.Lock()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Collect."""
        with lock:
            seen.append(ctx.payload.n)

    jobs.start()
    ids = work.push_many([{"n": 1}, {"n": 2}, Num(n=3)])

    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert jobs.drain(5)
    assert sorted(seen) == [1, 2, 3]
    assert all(jobs.get_execution(i) is None for i in ids)


def test_push_many_hands_the_dispatcher_one_batch(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """#43 against the dispatcher contract (any transport, the queue one too):
    one ``dispatch_many`` call with the three (job name, id) pairs."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    ids = work.push_many([{"n": 1}, {"n": 2}, {"n": 3}])

    assert recording.batches == [[("app.work", i) for i in ids]]
    assert len(set(ids)) == 3


def test_push_many_returns_keyed_ids_first_then_the_bulk_ids(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.2 step 7: not input order when keyed and unkeyed items are mixed."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    ids = work.push_many(
        [
            {"n": 1},
            PushItem({"n": 2}, key="b"),
            {"n": 3},
            PushItem({"n": 4}, key="a"),
            {"n": 5},
        ]
    )

    payloads = [jobs.get_execution(i).payload["n"] for i in ids]  # type: ignore[union-attr]
    assert payloads == [2, 4, 1, 3, 5]
    bulk = ids[2:]
    assert recording.batches[-1] == [("app.work", i) for i in bulk]


def test_push_many_with_a_held_key_returns_the_holders_id(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    holder = work.push({"n": 1}, key="k")
    ids = work.push_many([PushItem({"n": 2}, key="k"), {"n": 3}])

    assert ids[0] == holder
    assert count_rows(jobs) == 2


@pytest.mark.parametrize("name", ["app.work", "app.missing"])
def test_push_many_of_nothing_returns_an_empty_list(
    make_jobs: MakeJobs, name: str
) -> None:
    """§2.2 step 1: not even the job name is checked."""
    jobs = make_jobs()

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    assert jobs.push_many(name, []) == []
    assert work.push_many([]) == []


def test_push_many_to_an_unknown_job_raises(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()

    with pytest.raises(JobNotFoundError, match="app.missing"):
        jobs.push_many("app.missing", [{"n": 1}])


def test_one_invalid_payload_in_push_many_writes_nothing(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.2 step 4: all payloads are validated before any row is written."""
    jobs = make_jobs(dispatcher=recording)

    @jobs.job("app.work", schema=Num)
    def work(ctx: JobContext[Num]) -> None:
        """Never runs."""

    with pytest.raises(PayloadError):
        work.push_many(
            [PushItem({"n": 1}, key="k"), {"n": 2}, {"n": "three"}, {"n": 4}]
        )
    assert count_rows(jobs) == 0
    assert recording.dispatched == []
    assert recording.batches == []


def test_push_many_schedules_delayed_items_and_batches_the_rest(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.2 steps 5-6: delayed items get their own delayed dispatch."""
    with freeze_time(FROZEN):
        jobs = make_jobs(dispatcher=recording)

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Never runs."""

        at = FROZEN + timedelta(hours=2)
        ids = work.push_many(
            [
                {"n": 1},
                PushItem({"n": 2}, delay=timedelta(minutes=10)),
                PushItem({"n": 3}, scheduled_at=at),
                {"n": 4},
            ]
        )

        rows = [jobs.get_execution(i) for i in ids]
        assert [r.status for r in rows] == [  # type: ignore[union-attr]
            "pending",
            "scheduled",
            "scheduled",
            "pending",
        ]
        assert rows[1].scheduled_at == FROZEN + timedelta(minutes=10)  # type: ignore[union-attr]
        assert rows[2].scheduled_at == at  # type: ignore[union-attr]
        assert recording.batches == [[("app.work", ids[0]), ("app.work", ids[3])]]
        delayed = [d for d in recording.dispatched if d[2] > 0]
        assert delayed == [("app.work", ids[1], 600), ("app.work", ids[2], 7200)]


def test_delayed_push_many_items_run_once_due(make_jobs: MakeJobs) -> None:
    seen: list[int] = []
    with freeze_time(FROZEN) as frozen:
        jobs = make_jobs()
        ran = threading.Event()

        @jobs.job("app.work", schema=Num)
        def work(ctx: JobContext[Num]) -> None:
            """Collect."""
            seen.append(ctx.payload.n)
            ran.set()

        jobs.start()
        (execution_id,) = work.push_many([PushItem({"n": 9}, delay=60)])
        assert jobs.timekeeper.armed("promotion") == 1
        assert seen == []

        frozen.tick(timedelta(minutes=2))
        jobs.timekeeper.poke()

        assert ran.wait(5)
        assert jobs.drain(5)
        assert seen == [9]
        assert jobs.get_execution(execution_id) is None
