"""Inline pushes in direct mode: SPEC §2.1.3 and §12.6 (#57-#63)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    JobContext,
    JobEvent,
    JobUsageError,
    PushItem,
    Retention,
    Retry,
    Rule,
)

from .conftest import MakeJobs, RecordingDispatcher, wait_until


class Num(BaseModel):
    n: int


class ProviderRefused(Exception):
    """What a flaky downstream raises."""


def events_of(jobs: Any) -> list[JobEvent]:
    seen: list[JobEvent] = []
    for name in ("job:begin", "job:success", "job:error", "job:cancel", "job:end"):
        jobs.on(name, seen.append)
    return seen


def test_an_inline_push_returns_after_the_handler_finished(
    make_jobs: MakeJobs,
) -> None:
    """#57: the handler runs in the caller's thread, and the row is ``ok``."""
    jobs = make_jobs()
    finished: list[str] = []

    @jobs.job("app.code", schema=Num, retention=Retention(ok=Rule(last=10)))
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""
        finished.append(threading.current_thread().name)

    jobs.start()
    execution_id = send_code.push({"n": 1}, inline=True)

    assert finished == [threading.current_thread().name]
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.status == "ok"
    assert row.attempt == 1
    assert row.max_attempts == 1


def test_an_inline_push_runs_in_a_runtime_that_is_not_started(
    make_jobs: MakeJobs,
) -> None:
    """§2.1.3: inline bypasses the dispatcher entirely."""
    jobs = make_jobs()
    calls: list[int] = []

    @jobs.job("app.code", schema=Num)
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""
        calls.append(ctx.payload.n)

    execution_id = send_code.push({"n": 4}, inline=True)

    assert calls == [4]
    assert jobs.get_execution(execution_id) is None


@pytest.mark.parametrize("dispatcher", ["direct", "recording"])
def test_an_inline_failure_raises_to_the_caller_and_ends_in_error(
    make_jobs: MakeJobs, dispatcher: str
) -> None:
    """#58: one ``error`` row, never ``scheduled``; the sweep leaves it alone.
    It behaves the same whichever dispatcher is installed."""
    recording = RecordingDispatcher() if dispatcher == "recording" else None
    jobs = make_jobs(dispatcher=recording)
    calls: list[int] = []

    @jobs.job("app.code", schema=Num)
    def send_code(ctx: JobContext[Num]) -> None:
        """Call the provider."""
        calls.append(ctx.attempt)
        raise ProviderRefused("provider refused")

    jobs.start()
    with pytest.raises(ProviderRefused, match="provider refused"):
        send_code.push({"n": 1}, inline=True)

    page = jobs.executions("app.code")
    assert page.total_elements == 1
    (row,) = page.content
    assert row.status == "error"
    assert row.error == "provider refused"
    assert row.key is None
    jobs.sweep()
    assert jobs.drain(5)
    assert calls == [1]
    assert jobs.get_execution(row.id).status == "error"  # type: ignore[union-attr]
    if recording is not None:
        assert recording.dispatched == []


def test_an_inline_failure_emits_job_error_with_the_raised_exception(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs()
    seen = events_of(jobs)
    raised: list[BaseException] = []

    @jobs.job("app.code", schema=Num)
    def send_code(ctx: JobContext[Num]) -> None:
        """Call the provider."""
        error = ProviderRefused("provider refused")
        raised.append(error)
        raise error

    with pytest.raises(ProviderRefused) as caught:
        send_code.push({"n": 1}, inline=True)

    assert caught.value is raised[0]
    assert [e.event for e in seen] == ["job:begin", "job:error", "job:end"]
    assert seen[1].error is raised[0]
    assert seen[1].name == "app.code"


def test_an_inline_push_ignores_the_jobs_retry_policy(make_jobs: MakeJobs) -> None:
    """#59: one attempt, ``max_attempts = 1``, and the sweep does not re-run it."""
    jobs = make_jobs()
    calls: list[int] = []

    @jobs.job("app.code", schema=Num, retry=Retry(3))
    def send_code(ctx: JobContext[Num]) -> None:
        """Call the provider."""
        calls.append(ctx.attempt)
        raise ProviderRefused("provider refused")

    jobs.start()
    with pytest.raises(ProviderRefused):
        send_code.push({"n": 1}, inline=True)

    (row,) = jobs.executions("app.code").content
    execution_id = row.id
    assert row.status == "error"
    assert row.max_attempts == 1
    jobs.sweep()
    assert jobs.drain(5)
    assert calls == [1]
    assert jobs.get_execution(execution_id).status == "error"  # type: ignore[union-attr]


def test_a_normal_push_on_the_same_job_keeps_its_retries(make_jobs: MakeJobs) -> None:
    """#60: ``max_attempts = 4`` for ``retries = 3`` and the row waits to retry."""
    jobs = make_jobs(retry_backoff_base=3600, retry_backoff_max=3600)
    failed = threading.Event()
    jobs.on("job:error", lambda event: failed.set())

    @jobs.job("app.code", schema=Num, retry=Retry(3))
    def send_code(ctx: JobContext[Num]) -> None:
        """Call the provider."""
        raise ProviderRefused("provider refused")

    jobs.start()
    execution_id = send_code.push({"n": 1})

    assert failed.wait(5)

    def row_scheduled() -> bool:
        row = jobs.get_execution(execution_id)
        return row is not None and row.status == "scheduled"

    assert wait_until(row_scheduled, timeout=5)
    row = jobs.get_execution(execution_id)
    assert row is not None
    assert row.max_attempts == 4
    assert row.attempt == 1
    assert row.error == "provider refused"


def test_a_job_declaring_inline_runs_every_push_in_the_caller(
    make_jobs: MakeJobs,
) -> None:
    """§1.1 ``inline``: the job-level default, overridden per push."""
    jobs = make_jobs()
    threads: list[str] = []

    @jobs.job("app.code", schema=Num, inline=True)
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""
        threads.append(threading.current_thread().name)

    jobs.start()
    send_code.push({"n": 1})
    assert threads == [threading.current_thread().name]

    send_code.push({"n": 2}, inline=False)
    assert jobs.drain(5)
    assert len(threads) == 2
    assert threads[1].startswith("alepha-jobs-direct")


def test_push_many_on_an_inline_job_raises_and_writes_nothing(
    make_jobs: MakeJobs,
) -> None:
    """#61."""
    jobs = make_jobs()

    @jobs.job("app.code", schema=Num, inline=True)
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""

    with pytest.raises(JobUsageError, match="push_many cannot honour"):
        send_code.push_many([{"n": 1}, PushItem({"n": 2}, key="k")])
    assert jobs.executions("app.code").total_elements == 0


@pytest.mark.parametrize(
    "timing",
    [{"delay": 60}, {"delay": 0}, {"scheduled_at": "now"}],
    ids=["delay", "zero-delay", "scheduled-at"],
)
@pytest.mark.parametrize("declared", [True, False], ids=["job-inline", "push-inline"])
def test_inline_with_a_delay_raises_pick_one_and_writes_nothing(
    make_jobs: MakeJobs, timing: dict[str, Any], declared: bool
) -> None:
    """#61 and §2.1.1 step 5: any given delay counts, zero included."""
    jobs = make_jobs()

    @jobs.job("app.code", schema=Num, inline=declared)
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""

    options = dict(timing)
    if options.get("scheduled_at") == "now":
        options["scheduled_at"] = datetime.now(timezone.utc)
    if not declared:
        options["inline"] = True
    with pytest.raises(JobUsageError, match="Pick one"):
        send_code.push({"n": 1}, **options)
    assert jobs.executions("app.code").total_elements == 0


def test_an_inline_failure_without_recorded_errors_raises_and_leaves_no_row(
    make_jobs: MakeJobs,
) -> None:
    """#62."""
    jobs = make_jobs()
    seen = events_of(jobs)

    @jobs.job("app.code", schema=Num, retention=Retention(error=False))
    def send_code(ctx: JobContext[Num]) -> None:
        """Call the provider."""
        raise ProviderRefused("provider refused")

    with pytest.raises(ProviderRefused):
        send_code.push({"n": 1}, inline=True)
    assert jobs.executions("app.code").total_elements == 0
    assert "job:error" in [e.event for e in seen]


def test_reschedule_in_an_inline_push_fails_the_push(make_jobs: MakeJobs) -> None:
    """#63: the refusal is a handler failure; one ``error`` row remains."""
    jobs = make_jobs()

    @jobs.job("app.code", schema=Num)
    def send_code(ctx: JobContext[Num]) -> None:
        """Try to park."""
        ctx.reschedule(delay=60)

    with pytest.raises(JobUsageError, match="inline"):
        send_code.push({"n": 1}, inline=True)

    (row,) = jobs.executions("app.code").content
    assert row.status == "error"
    assert "reschedule" in (row.error or "")


def test_an_inline_push_with_a_held_key_returns_the_holder_without_running(
    make_jobs: MakeJobs, recording: RecordingDispatcher
) -> None:
    """§2.1.1 step 7.1: no inline run even when inline was requested."""
    jobs = make_jobs(dispatcher=recording)
    calls: list[int] = []

    @jobs.job("app.code", schema=Num)
    def send_code(ctx: JobContext[Num]) -> None:
        """Send a short-lived code."""
        calls.append(ctx.payload.n)

    holder = send_code.push({"n": 1}, key="k", delay=3600)

    assert send_code.push({"n": 2}, key="k", inline=True) == holder
    assert calls == []
    row = jobs.get_execution(holder)
    assert row is not None and row.status == "scheduled"
