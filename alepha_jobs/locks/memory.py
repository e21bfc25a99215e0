"""A lock store in process memory: it coordinates the threads of one process only."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from .. import clock
from .base import LockStore, is_expired, owner_of


class MemoryLockStore(LockStore):
    """Keys in a dict behind one :class:`threading.Lock`.

    It cannot keep two processes or hosts from running the same cron instant; use
    :class:`~alepha_jobs.locks.DatabaseLockStore` or another shared store for that.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, datetime | None]] = {}
        self._lock = threading.Lock()

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        now = clock.now()
        expires_at = None if ttl is None else now + ttl
        with self._lock:
            current = self._live(key, now)
            if nx and current is not None:
                return current
            self._entries[key] = (value, expires_at)
            return value

    def _get(self, key: str) -> str | None:
        now = clock.now()
        with self._lock:
            return self._live(key, now)

    def _delete(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        now = clock.now()
        with self._lock:
            current = self._live(key, now)
            if current is None or owner_of(current) != owner_id:
                return False
            del self._entries[key]
            return True

    def _prune(self) -> int:
        now = clock.now()
        with self._lock:
            expired = [
                key
                for key, (_, expires_at) in self._entries.items()
                if is_expired(expires_at, now)
            ]
            for key in expired:
                del self._entries[key]
        return len(expired)

    def _live(self, key: str, now: datetime) -> str | None:
        """The value of ``key`` at ``now``, dropping it if expired (lock held)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if is_expired(expires_at, now):
            del self._entries[key]
            return None
        return value
