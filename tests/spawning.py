"""Processes started together: the concurrent-migration tests of both stores."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier


def run_at_once(
    target: Callable[[str, Barrier, int], None], url: str, processes: int
) -> list[int | None]:
    """Run ``target(url, barrier, index)`` in ``processes`` spawned processes that
    wait for each other on ``barrier``; their exit codes once all have ended."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(processes)
    workers = [
        spawn.Process(target=target, args=(url, barrier, index))
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    return [process.exitcode for process in workers]
