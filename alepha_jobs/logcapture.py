"""Per-run log capture (SPEC §4.7) through a context variable.

A log record factory, chained to the one already installed, copies every record
created inside a run into that run's bounded buffer. No handler is added and no
level is changed: records the logging configuration filters out before they are
created (below a logger's level) are not captured.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

_buffer: contextvars.ContextVar[collections.deque[dict[str, Any]] | None]
_buffer = contextvars.ContextVar("alepha_jobs_log_buffer", default=None)
_install_lock = threading.Lock()
_installed = False


def _entry(record: logging.LogRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "level": record.levelname.lower(),
        "message": record.getMessage(),
        "logger": record.name,
        "timestamp_ms": int(record.created * 1000),
    }
    if record.exc_info and record.exc_info[1] is not None:
        entry["context"] = {"exception": repr(record.exc_info[1])}
    return entry


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            buffer = _buffer.get()
            if buffer is not None:
                # never let capture break the caller's log call
                with contextlib.suppress(Exception):
                    buffer.append(_entry(record))
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


@contextlib.contextmanager
def capture(max_entries: int) -> Iterator[collections.deque[dict[str, Any]]]:
    """Collect the log records of the current run, keeping the newest ``max_entries``.

    Run each execution in a fresh :func:`contextvars.copy_context` so one run's
    buffer never leaks into another thread or into the caller.
    """
    _install()
    buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_entries)
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
