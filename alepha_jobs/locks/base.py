"""The lock store contract of SPEC §6.2: set-if-absent with expiry, owner deletes.

A stored value names its owner in the segment before its first comma (the cron run
lock stores ``<holder id>,<time>``, the instant claim ``<holder id>,<uuid>``). Every
expiry is read through :mod:`alepha_jobs.clock`, so frozen time drives it, except in
Redis, which keeps its own clock.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import TracebackType

from ..durations import DurationLike, to_timedelta
from ..errors import InvalidArgumentError, LockError


def owner_of(value: str) -> str:
    """The owner segment of a stored value: everything before the first comma."""
    return value.split(",", 1)[0]


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a key with this expiry is gone at ``now`` (``None`` never expires)."""
    return expires_at is not None and expires_at <= now


class LockStore(abc.ABC):
    """A small key-value store with TTLs, shared by whoever must agree on a lock.

    Implementations: :class:`MemoryLockStore` (one process),
    :class:`DatabaseLockStore` (the outbox database), :class:`FileLockStore` (a
    directory on one host) and :class:`RedisLockStore`. Driver errors surface as
    :class:`~alepha_jobs.errors.LockError` with the driver's error as ``__cause__``.
    """

    #: Driver exceptions that :meth:`_translate` turns into a :class:`LockError`.
    _driver_errors: tuple[type[BaseException], ...] = ()

    def set(
        self,
        key: str,
        value: str,
        *,
        nx: bool = False,
        ttl: DurationLike | None = None,
    ) -> str:
        """Write ``value`` under ``key`` and return the value stored afterwards.

        :param nx: write only if the key is absent or expired; when a live key
            exists, return its value unchanged.
        :param ttl: lifetime of the new value, rounded up to whole milliseconds.
            Without one the value never expires, even if the previous value did.
        :raises InvalidArgumentError: a non-text key or value, or a ttl that is
            not a positive duration.
        :raises LockError: the backend failed.
        """
        _check_text(key=key, value=value)
        lifetime = _lifetime(ttl)
        with self._translating():
            return self._set(key, value, nx, lifetime)

    def get(self, key: str) -> str | None:
        """The live value of ``key``; an expired key reads as absent.

        :raises LockError: the backend failed.
        """
        _check_text(key=key)
        with self._translating():
            return self._get(key)

    def delete(self, *keys: str) -> None:
        """Delete every key given; missing keys are ignored.

        :raises LockError: the backend failed.
        """
        _check_text(**{f"keys[{i}]": key for i, key in enumerate(keys)})
        if keys:
            with self._translating():
                self._delete(keys)

    def delete_if_owner(self, key: str, owner_id: str) -> bool:
        """Delete ``key`` only if :func:`owner_of` its live value is ``owner_id``.

        The compare and the delete are one atomic step.

        :returns: whether a live key was deleted.
        :raises LockError: the backend failed.
        """
        _check_text(key=key, owner_id=owner_id)
        if "," in owner_id:
            return False  # an owner segment never contains a comma
        with self._translating():
            return self._delete_if_owner(key, owner_id)

    def prune(self) -> int:
        """Remove expired keys that still take space; return how many went.

        Expired keys already read as absent; this only reclaims their storage.

        :raises LockError: the backend failed.
        """
        with self._translating():
            return self._prune()

    def close(self) -> None:  # noqa: B027 (a hook: most stores hold nothing)
        """Release what this store opened; resources it was given stay open."""

    def __enter__(self) -> LockStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # what each backend provides

    @abc.abstractmethod
    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str: ...

    @abc.abstractmethod
    def _get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def _delete(self, keys: tuple[str, ...]) -> None: ...

    @abc.abstractmethod
    def _delete_if_owner(self, key: str, owner_id: str) -> bool: ...

    def _prune(self) -> int:
        return 0

    def _translate(self, error: BaseException) -> LockError:
        """The one place a driver error becomes a :class:`LockError`."""
        return LockError(f"{type(self).__name__}: {type(error).__name__}: {error}")

    @contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except self._driver_errors as error:
            raise self._translate(error) from error


def _lifetime(ttl: DurationLike | None) -> timedelta | None:
    if ttl is None:
        return None
    lifetime = to_timedelta(ttl, "ttl")
    if lifetime <= timedelta(0):
        raise InvalidArgumentError(
            f"ttl must be a positive duration, got {ttl!r}; pass ttl=None for a "
            "value that never expires"
        )
    milliseconds = math.ceil(lifetime / timedelta(milliseconds=1))
    return timedelta(milliseconds=milliseconds)


def _check_text(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"{name} must be a str, got {type(value).__name__}"
            )
