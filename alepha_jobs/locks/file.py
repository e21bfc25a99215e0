"""A lock store in a directory: one JSON file per key, guarded by ``flock``.

It coordinates the processes of **one host** only. ``flock`` on a network file
system is not reliable across hosts; use the database or Redis store there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import filelock

from .. import clock
from ..errors import LockError
from .base import LockStore, is_expired, owner_of

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 30.0
_STRIPES = 2  # hex digits of the key hash that pick a guard file: 256 guard files


class FileLockStore(LockStore):
    """Keys as ``<sha256 of key>.json`` files holding ``{key, value, expires_at}``.

    Every operation holds a :class:`filelock.FileLock`; keys share 256 guard files
    (``<first two hex digits>.lock``) because a guard file cannot be deleted safely
    while another process may be waiting on it, and cron instant keys are new on
    every tick. Expired key files read as absent; :meth:`prune` deletes them. One
    host only.

    :param directory: created if missing.
    :param timeout: seconds to wait for a guard file before :class:`LockError`.
    """

    _driver_errors = (OSError,)  # filelock.Timeout is an OSError too

    def __init__(
        self, directory: str | os.PathLike[str], *, timeout: float = LOCK_TIMEOUT
    ) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        with self._translating():
            self.directory.mkdir(parents=True, exist_ok=True)

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        path = self._path(key)
        with self._guard(path):
            now = clock.now()
            current = self._live(path, now)
            if nx and current is not None:
                return current
            expires_at = None if ttl is None else clock.to_text(now + ttl)
            _write(path, {"key": key, "value": value, "expires_at": expires_at})
            return value

    def _get(self, key: str) -> str | None:
        path = self._path(key)
        with self._guard(path):
            return self._live(path, clock.now())

    def _delete(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            path = self._path(key)
            with self._guard(path):
                path.unlink(missing_ok=True)

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        path = self._path(key)
        with self._guard(path):
            current = self._live(path, clock.now())
            if current is None or owner_of(current) != owner_id:
                return False
            path.unlink()
            return True

    def _prune(self) -> int:
        pruned = 0
        for path in sorted(self.directory.glob("*.json")):
            with self._guard(path):
                if path.exists() and self._live(path, clock.now()) is None:
                    path.unlink(missing_ok=True)
                    pruned += 1
        return pruned

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.directory / f"{digest}.json"

    def _guard(self, path: Path) -> filelock.FileLock:
        stripe = path.name[:_STRIPES]
        return filelock.FileLock(self.directory / f"{stripe}.lock", self.timeout)

    def _live(self, path: Path, now: datetime) -> str | None:
        """The value stored at ``path`` unless missing or expired (guard held)."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            value = record["value"]
            expires_at = clock.from_text(record["expires_at"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            # a damaged file would block its key forever; a lock store fails open
            logger.warning(
                "ignoring unreadable lock file %s: %s",
                path,
                error,
                extra={"event": "lock.unreadable", "path": str(path)},
            )
            return None
        if is_expired(expires_at, now):
            return None
        return str(value)

    def _translate(self, error: BaseException) -> LockError:
        return LockError(f"lock directory {str(self.directory)!r}: {error}")


def _write(path: Path, record: dict[str, str | None]) -> None:
    """Replace ``path`` whole, so a crash never leaves half a record."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(record), encoding="utf-8")
    os.replace(partial, path)
