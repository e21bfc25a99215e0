"""A lock store in Redis, for processes on several hosts (extra ``redis``).

Expiry is Redis's own ``PX``, so it follows the Redis server's clock, not
:mod:`alepha_jobs.clock`. Set-if-absent and the owner delete are Lua scripts, each
atomic on the server.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, LockError
from .base import LockStore

if TYPE_CHECKING:
    from redis import Redis

# SET NX, then the value that is there now; one script, so never a vanished key
_SET_NX = """
local stored
if ARGV[2] == '' then
  stored = redis.call('SET', KEYS[1], ARGV[1], 'NX')
else
  stored = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
if stored then
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""

_DELETE_IF_OWNER = """
local value = redis.call('GET', KEYS[1])
local owner = ARGV[1]
if value and (value == owner or string.sub(value, 1, #owner + 1) == owner .. ',')
then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _import_redis() -> ModuleType:
    try:
        return importlib.import_module("redis")
    except ImportError as error:
        raise ConfigurationError(
            "the Redis lock store needs the redis package: "
            "pip install 'alepha-jobs[redis]'"
        ) from error


class RedisLockStore(LockStore):
    """Locks as Redis keys, shared by every process that reaches the server.

    :param url_or_client: a ``redis://`` URL, or a ``redis.Redis`` client that
        stays the caller's to close.
    :param prefix: prepended to every key, so several applications (or test
        runs) can share one Redis server without meeting each other's locks.
    :raises ConfigurationError: the redis package is not installed, or the URL
        is malformed.
    """

    def __init__(self, url_or_client: str | Redis, *, prefix: str = "") -> None:
        redis = _import_redis()
        self.prefix = prefix
        self._driver_errors = (redis.RedisError,)
        self._owns_client = isinstance(url_or_client, str)
        if isinstance(url_or_client, str):
            try:
                client = redis.Redis.from_url(url_or_client)
            except ValueError as error:
                raise ConfigurationError(
                    f"Redis URL {url_or_client!r}: {error}"
                ) from None
        else:
            client = url_or_client
        self.client: Redis = client
        self._set_nx = client.register_script(_SET_NX)
        self._delete_owned = client.register_script(_DELETE_IF_OWNER)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _set(self, key: str, value: str, nx: bool, ttl: timedelta | None) -> str:
        milliseconds = None if ttl is None else ttl // timedelta(milliseconds=1)
        if not nx:
            # a SET without PX also clears any expiry the key had
            self.client.set(self.prefix + key, value, px=milliseconds)
            return value
        stored = self._set_nx(
            keys=[self.prefix + key], args=[value, milliseconds or ""]
        )
        return _text(stored)

    def _get(self, key: str) -> str | None:
        stored = self.client.get(self.prefix + key)
        return None if stored is None else _text(stored)

    def _delete(self, keys: tuple[str, ...]) -> None:
        self.client.delete(*(self.prefix + key for key in keys))

    def _delete_if_owner(self, key: str, owner_id: str) -> bool:
        return bool(self._delete_owned(keys=[self.prefix + key], args=[owner_id]))

    def _translate(self, error: BaseException) -> LockError:
        return LockError(f"Redis lock store: {type(error).__name__}: {error}")


def _text(stored: Any) -> str:
    return stored.decode("utf-8") if isinstance(stored, bytes) else str(stored)
