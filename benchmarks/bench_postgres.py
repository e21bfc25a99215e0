"""Postgres: push one at a time and drain with 4 workers, against procrastinate
and pgqueuer, each in a fresh database of its own that is dropped afterwards.

alepha_jobs drains in direct mode, timed from ``push_many`` into a started
runtime until ``drain()`` returns (the insert included). procrastinate runs
``run_worker_async(concurrency=4, wait=False)`` and pgqueuer
``QueueManager.run(mode=drain)``, both timed after the enqueue.

    python benchmarks/bench_postgres.py            # 2,000 pushes, 10,000 drained
    python benchmarks/bench_postgres.py --quick

The server is ``ALEPHA_JOBS_BENCH_POSTGRES`` (else ``ALEPHA_JOBS_TEST_POSTGRES``,
else the local ``test`` database); the role must be allowed to create databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import (
    Report,
    Target,
    alepha_runtime,
    parse_args,
    peer,
    postgres_admin,
    postgres_database,
    timed_drain,
    timed_pushes,
)

WORKERS = 4
logging.getLogger("procrastinate").setLevel(logging.ERROR)


def alepha_push(url: str, count: int) -> float:
    return timed_pushes(alepha_runtime(url), count)


OPT_OUT = 1  # batch_size: one claim and one finish per job


def alepha_drain(url: str, count: int, batch_size: int | None = None) -> float:
    runtime = alepha_runtime(url, workers=WORKERS, batch_size=batch_size)
    return timed_drain(runtime, count)


def raw_inserts(url: str, count: int) -> float:
    """The physical limit: psycopg, one autocommit INSERT per row, one table."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS raw_jobs (id bigserial PRIMARY KEY, "
            "payload jsonb)"
        )
        began = time.perf_counter()
        for n in range(count):
            connection.execute(
                "INSERT INTO raw_jobs (payload) VALUES (%s)", (f'{{"n":{n}}}',)
            )
        return count / (time.perf_counter() - began)


def procrastinate_app(
    procrastinate: Any, url: str, record: Callable[[int], None] | None = None
) -> tuple[Any, Any]:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="bench_noop")  # type: ignore[misc]
    def noop(n: int) -> None:
        if record is not None:
            record(n)

    return app, noop


def procrastinate_install(procrastinate: Any, url: str) -> None:
    app, _ = procrastinate_app(procrastinate, url)
    with app.open():
        app.schema_manager.apply_schema()


def procrastinate_push(procrastinate: Any, url: str, count: int) -> float:
    app, noop = procrastinate_app(procrastinate, url)
    with app.open():
        began = time.perf_counter()
        for n in range(count):
            noop.defer(n=n)
        return count / (time.perf_counter() - began)


def procrastinate_drain(procrastinate: Any, url: str, count: int) -> float:
    last = _LastRun(count)
    app, noop = procrastinate_app(procrastinate, url, last.ran)
    with app.open():
        for n in range(count):
            noop.defer(n=n)

    async def work() -> float:
        async with app.open_async():
            began = time.perf_counter()
            await app.run_worker_async(
                concurrency=WORKERS, wait=False, install_signal_handlers=False
            )
            return last.at - began

    return count / asyncio.run(work())


class _LastRun:
    """When the last of ``count`` handlers ran: a worker's own shutdown is not
    part of its drain."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.at = 0.0
        self.lock = threading.Lock()

    def ran(self, n: int = 0) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.at = time.perf_counter()


class ProcrastinateWorker:
    """A procrastinate worker on its own thread and event loop."""

    def __init__(self, procrastinate: Any, url: str, record: Callable[[int], None]):
        self.app, _ = procrastinate_app(procrastinate, url, record)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.task: asyncio.Task[None] | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        async with self.app.open_async():
            self.task = asyncio.ensure_future(
                self.app.run_worker_async(
                    concurrency=WORKERS, install_signal_handlers=False
                )
            )
            self.loop.call_later(0.5, self.ready.set)
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def __enter__(self) -> ProcrastinateWorker:
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)


async def _pgqueuer_connection(url: str) -> Any:
    import psycopg

    return await psycopg.AsyncConnection.connect(url, autocommit=True)


def pgqueuer_install(pgqueuer: Any, url: str) -> None:
    async def install() -> None:
        connection = await _pgqueuer_connection(url)
        await pgqueuer.Queries(pgqueuer.PsycopgDriver(connection)).install()
        await connection.close()

    asyncio.run(install())


def pgqueuer_push(pgqueuer: Any, url: str, count: int) -> float:
    async def push() -> float:
        connection = await _pgqueuer_connection(url)
        queries = pgqueuer.Queries(pgqueuer.PsycopgDriver(connection))
        began = time.perf_counter()
        for n in range(count):
            await queries.enqueue("bench_noop", str(n).encode())
        elapsed = time.perf_counter() - began
        await connection.close()
        return count / elapsed

    return asyncio.run(push())


def pgqueuer_drain(pgqueuer: Any, url: str, count: int) -> float:
    from pgqueuer.types import QueueExecutionMode

    async def drain() -> float:
        connection = await _pgqueuer_connection(url)
        driver = pgqueuer.PsycopgDriver(connection)
        await pgqueuer.Queries(driver).enqueue(
            ["bench_noop"] * count, [str(n).encode() for n in range(count)], [0] * count
        )
        manager = pgqueuer.QueueManager(pgqueuer.Queries(driver))
        last = _LastRun(count)

        @manager.entrypoint("bench_noop")  # type: ignore[misc]
        async def noop(job: Any) -> None:
            last.ran()

        began = time.perf_counter()
        await manager.run(mode=QueueExecutionMode.drain, batch_size=10)
        elapsed = last.at - began
        await connection.close()
        return count / elapsed

    return asyncio.run(drain())


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(__doc__.splitlines()[0], argv)
    pushes, drained = (50, 100) if args.quick else (2_000, 10_000)
    report = Report(
        f"Postgres: push {pushes:,} one at a time, drain {drained:,} "
        f"with {WORKERS} workers",
        args,
    )
    admin = postgres_admin()
    if admin is None:
        report.skip("Postgres benchmarks", "server unreachable")
        report.print()
        return report
    procrastinate = peer("procrastinate", report)
    pgqueuer = peer("pgqueuer", report)
    try:
        with postgres_database(admin) as url:
            report.measure(
                "push", "alepha_jobs", "jobs/s", lambda: alepha_push(url, pushes)
            )
            report.measure(
                "raw INSERT autocommit",
                "psycopg",
                "rows/s",
                lambda: raw_inserts(url, pushes),
            )
            report.measure(
                "drain", "alepha_jobs", "jobs/s", lambda: alepha_drain(url, drained)
            )
            report.measure(
                f"drain batch_size={OPT_OUT} (opt-out)",
                "alepha_jobs",
                "jobs/s",
                lambda: alepha_drain(url, drained, OPT_OUT),
            )
        peers = (
            ("procrastinate", procrastinate, "defer",
             procrastinate_install, procrastinate_push, procrastinate_drain),
            ("pgqueuer", pgqueuer, "enqueue",
             pgqueuer_install, pgqueuer_push, pgqueuer_drain),
        )  # fmt: skip
        for name, module, verb, install, push, drain in peers:
            if module is None:
                continue
            with postgres_database(admin) as url:
                install(module, url)
                report.measure(
                    f"{name} {verb}",
                    name,
                    "jobs/s",
                    lambda: push(module, url, pushes),  # noqa: B023
                )
                report.measure(
                    f"{name} drain",
                    name,
                    "jobs/s",
                    lambda: drain(module, url, drained),  # noqa: B023
                )
    finally:
        admin.close()
    report.target(
        Target("drain / procrastinate drain", "drain", "procrastinate drain",
               at_least=4),
        Target("drain / pgqueuer drain", "drain", "pgqueuer drain", at_least=1),
        Target("push / procrastinate defer", "push", "procrastinate defer",
               at_least=2),
        Target("push / raw INSERT autocommit", "push", "raw INSERT autocommit"),
        Target("procrastinate defer / raw INSERT autocommit",
               "procrastinate defer", "raw INSERT autocommit"),
        Target(f"drain batch_size={OPT_OUT} / procrastinate drain",
               f"drain batch_size={OPT_OUT} (opt-out)", "procrastinate drain"),
        Target(f"drain batch_size={OPT_OUT} / pgqueuer drain",
               f"drain batch_size={OPT_OUT} (opt-out)", "pgqueuer drain"),
        Target(f"drain (default) / drain batch_size={OPT_OUT}",
               "drain", f"drain batch_size={OPT_OUT} (opt-out)"),
    )  # fmt: skip
    report.print()
    return report


if __name__ == "__main__":
    main()
