"""The dispatcher contract (SPEC §4.2): a dispatch is only a hint; the row is truth."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Literal

Process = Callable[[str, str], None]
PromoteLater = Callable[[str, str, float], None]


class Dispatcher(abc.ABC):
    """Delivers executions to :meth:`Jobs.process_execution`, now or after a delay.

    A transport that cannot hold a delayed message raises
    :class:`~alepha_jobs.errors.DelayNotSupported` and enqueues nothing; it must
    never deliver a delayed execution early.
    """

    kind: Literal["direct", "queue"]

    def bind(self, process: Process, promote_later: PromoteLater) -> None:
        """Called once by the runtime before :meth:`start`."""
        self._process = process
        self._promote_later = promote_later

    def start(self, consume: bool) -> None:  # noqa: B027 (optional hook)
        """Begin delivering; ``consume=False`` only sends."""

    def stop(self, timeout: float) -> None:  # noqa: B027 (optional hook)
        """Stop delivering; undelivered items stay ``pending`` for the sweep."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; called by :meth:`Jobs.close` after :meth:`stop`."""

    @property
    def backlog(self) -> int:
        """Items accepted but not yet handed to a handler in this process."""
        return 0

    @abc.abstractmethod
    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        """Hand one execution over; must return quickly."""

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        """Hand many over; the default loops over :meth:`dispatch`."""
        for job_name, execution_id in items:
            self.dispatch(job_name, execution_id, delay_seconds)
