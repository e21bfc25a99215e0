"""Lifecycle events (SPEC §8): a small synchronous emitter."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from .errors import InvalidArgumentError

logger = logging.getLogger(__name__)

EventName = Literal["job:begin", "job:success", "job:error", "job:cancel", "job:end"]
EVENT_NAMES: tuple[str, ...] = (
    "job:begin",
    "job:success",
    "job:error",
    "job:cancel",
    "job:end",
)


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """What a listener receives."""

    event: str
    name: str
    execution_id: str
    now: datetime | None = None
    error: BaseException | None = None


Listener = Callable[[JobEvent], None]


class Emitter:
    """Calls listeners in registration order; a raising listener is logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, list[Listener]] = defaultdict(list)

    def on(self, event: str, listener: Listener) -> None:
        """Register ``listener`` for ``event``.

        :raises InvalidArgumentError: unknown event name.
        """
        if event not in EVENT_NAMES:
            raise InvalidArgumentError(
                f"unknown event {event!r}; use one of {', '.join(EVENT_NAMES)}"
            )
        with self._lock:
            self._listeners[event].append(listener)

    def off(self, event: str, listener: Listener) -> None:
        """Unregister ``listener`` from ``event``; unknown ones are ignored."""
        with self._lock:
            listeners = self._listeners.get(event, [])
            if listener in listeners:
                listeners.remove(listener)

    def emit(self, event: JobEvent) -> None:
        """Call every listener of ``event.event``, outside the lock."""
        with self._lock:
            listeners = list(self._listeners.get(event.event, ()))
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                logger.exception(
                    "listener for %s of %s failed",
                    event.event,
                    event.name,
                    extra={"event": "listener.failed", "job": event.name},
                )
