"""What a handler receives: :class:`JobContext` and its :class:`AbortSignal`."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from .errors import AbortedError

logger = logging.getLogger(__name__)

P = TypeVar("P")


class AbortSignal:
    """Fires on timeout, on ``cancel()`` in this process, or at shutdown.

    Cancellation is cooperative: a handler checks :attr:`aborted`, waits on
    :meth:`wait` instead of sleeping, or calls :meth:`raise_if_aborted`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[str], None]] = []
        self.reason: str | None = None

    @property
    def aborted(self) -> bool:
        """Whether the signal has fired."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; return ``True`` if the signal fired."""
        return self._event.wait(timeout)

    def raise_if_aborted(self) -> None:
        """:raises AbortedError: the signal has fired."""
        if self.aborted:
            raise AbortedError(f"execution aborted: {self.reason}")

    def on_abort(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the signal fires (at once if it has)."""
        with self._lock:
            if not self.aborted:
                self._callbacks.append(callback)
                return
        callback(self.reason or "aborted")

    def abort(self, reason: str) -> None:
        """Fire the signal; later calls are ignored."""
        with self._lock:
            if self.aborted:
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                logger.exception("abort callback failed")


@dataclasses.dataclass
class RescheduleIntent:
    """What :meth:`JobContext.reschedule` recorded; applied when the handler returns."""

    scheduled_at: datetime
    payload: dict[str, Any] | None


@dataclasses.dataclass
class JobContext(Generic[P]):
    """The argument of every handler.

    :ivar payload: the validated payload (an instance of the job's schema), or
        ``None`` for cron runs.
    :ivar attempt: 1 on the first run, 2 on the first retry; back to 1 after a
        reschedule.
    :ivar now: the claim time of a queue run; the scheduled instant of a cron tick.
    :ivar signal: the run's :class:`AbortSignal`.
    """

    payload: P
    attempt: int
    now: datetime
    signal: AbortSignal
    execution_id: str
    job_name: str
    _reschedule: Callable[..., RescheduleIntent] = dataclasses.field(repr=False)
    intent: RescheduleIntent | None = dataclasses.field(default=None, repr=False)

    def reschedule(
        self,
        *,
        delay: Any = None,
        scheduled_at: datetime | None = None,
        payload: Any = None,
    ) -> None:
        """Park this execution until later instead of finishing it.

        Nothing is written until the handler returns normally; the last call wins.
        The next stage starts again at attempt 1 with the full retry budget.

        :raises JobUsageError: called in a cron or inline run, or with neither
            ``delay`` nor ``scheduled_at``.
        :raises PayloadError: ``payload`` fails the job's schema.
        """
        self.intent = self._reschedule(
            delay=delay, scheduled_at=scheduled_at, payload=payload
        )
