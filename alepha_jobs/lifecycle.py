"""Starting and stopping a :class:`~alepha_jobs.app.Jobs` runtime, and waiting
for it to drain."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .cron.catch_up import catch_up
from .cron.scheduler import Scheduler
from .dispatch.direct import DirectDispatcher
from .dispatch.pickup import Pickup

if TYPE_CHECKING:
    from .app import Jobs

# The runtime's logger, so that these events keep the name they always had.
logger = logging.getLogger(__name__)

ABORT_GRACE = 0.5  # seconds aborted runs get to finish before stop() returns


def start(jobs: Jobs, consume: bool, schedule: bool) -> None:
    """See :meth:`Jobs.start <alepha_jobs.app.Jobs.start>`."""
    with jobs._state:
        if jobs._started:
            return
        jobs._started, jobs._stopping = True, False
    try:
        jobs.dispatcher.start(consume)
    except BaseException:
        with jobs._state:
            jobs._started = False
        raise
    if schedule:
        jobs._scheduler = _build_scheduler(jobs)
        jobs._scheduler.start()
    if consume and isinstance(jobs.dispatcher, DirectDispatcher):
        jobs._pickup = Pickup(jobs, jobs.dispatcher)
        jobs._pickup.start()
    _log_modes(jobs)
    jobs.sweep()
    if schedule:
        catch_up(jobs)
    atexit.register(jobs._stop_at_exit)


def _build_scheduler(jobs: Jobs) -> Scheduler:
    scheduler = Scheduler()
    tasks = {"system.jobs.sweep": jobs.sweep, "system.jobs.trim": jobs.trim}
    for name, expression in jobs._housekeeping.items():
        scheduler.add(name, expression, _ignoring_instant(tasks[name]))
    for definition in jobs._definitions.values():
        if definition.cron is not None:
            scheduler.add(
                definition.name,
                definition.cron,
                jobs.cron.scheduled,
                definition.name,
            )
    return scheduler


def _log_modes(jobs: Jobs) -> None:
    modes = {name: jobs.effective_mode(name) for name in jobs._definitions}
    counts = {mode: list(modes.values()).count(mode) for mode in set(modes.values())}
    logger.info(
        "alepha_jobs started on %s: %s",
        jobs.store.url,
        ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) or "no jobs",
        extra={"event": "runtime.started", "modes": modes},
    )


def stop(jobs: Jobs, timeout: float | None) -> bool:
    """See :meth:`Jobs.stop <alepha_jobs.app.Jobs.stop>`."""
    with jobs._state:
        if not jobs._started:
            return True
        jobs._stopping = True
    if jobs._scheduler is not None:
        jobs._scheduler.stop()
    if jobs._pickup is not None:
        jobs._pickup.stop()
        jobs._pickup = None
    limit = jobs.config.drain_timeout.total_seconds() if timeout is None else timeout
    # The abort grace comes out of the limit, so stop() keeps to drain_timeout.
    grace = min(ABORT_GRACE, limit / 4)
    jobs.dispatcher.stop(0)  # drops the FIFO; running workers finish their run
    settled = _wait(jobs, lambda: jobs._in_flight == 0, limit - grace)
    if not settled:
        _abort_all(jobs)
        # Cooperative runs end now; the others are left to the sweep.
        _wait(jobs, lambda: jobs._in_flight == 0, grace)
    jobs.dispatcher.stop(5.0 if jobs._in_flight == 0 else 0)
    jobs.timekeeper.stop()
    with jobs._state:
        jobs._promotions.clear()
    jobs.lease.stop()
    with jobs._state:
        jobs._started = False
        jobs._scheduler = None
    atexit.unregister(jobs._stop_at_exit)
    logger.info("alepha_jobs stopped", extra={"event": "runtime.stopped"})
    return settled


def _abort_all(jobs: Jobs) -> None:
    running = list(jobs.signals.items())
    logger.warning(
        "drain timeout: aborting %d running executions; their leases will "
        "expire and another process's sweep recovers them",
        len(running),
        extra={"event": "runtime.aborted", "ids": [i for i, _ in running]},
    )
    for _, signal in running:
        signal.abort("shutdown")


def drain(jobs: Jobs, timeout: float | None) -> bool:
    """See :meth:`Jobs.drain <alepha_jobs.app.Jobs.drain>`."""

    def idle() -> bool:
        return (
            jobs._in_flight == 0
            and jobs.dispatcher.backlog == 0
            and jobs.timekeeper.armed("promotion") == 0
        )

    return _wait(jobs, idle, timeout)


def _wait(jobs: Jobs, done: Callable[[], bool], timeout: float | None) -> bool:
    # Counted waits rather than monotonic deadlines: frozen clocks in tests
    # must not stop a drain from timing out.
    step = 0.01
    remaining = None if timeout is None else max(0, int(timeout / step))
    with jobs._state:
        while not done():
            if remaining is not None:
                if remaining <= 0:
                    return False
                remaining -= 1
            jobs._state.wait(step)
    return True


def _ignoring_instant(task: Callable[[], Any]) -> Callable[..., None]:
    def run(*, instant: datetime | None = None) -> None:
        task()

    return run
