"""Queue mode through Redis (SPEC §4.4): any process may consume what any pushed.

Layout, under a key prefix (default ``queue``; ``?prefix=`` in the URL):

- ``<prefix>:api:jobs:dispatch``, a list of ready messages (LPUSH, RPOP: FIFO);
- ``<prefix>:api:jobs:dispatch:delayed``, a sorted set of delayed messages scored
  by their due time in milliseconds of the *Redis server's* clock, so hosts whose
  clocks disagree still agree on when a message is due. Each member is
  ``<uuid>:<message>`` so identical messages never collapse.

A consumer that finds the list empty (or has not looked for a second) moves due
members to the list; each member moves only if its ``ZREM`` returned 1, so two
pollers never both move it (the script runs atomically on the server anyway).
A message is JSON ``{"job_name": ..., "execution_id": ...}``; nothing is pickled.
The message is only a hint: the row is the truth, a message lost anywhere (a
process killed between pop and claim, a Redis restart) leaves its row
``pending`` or ``scheduled`` for the sweep.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigurationError, QueueError
from .base import Dispatcher

if TYPE_CHECKING:
    from redis import Redis

    from ..locks.redis import RedisLockStore

logger = logging.getLogger(__name__)

QUEUE_NAME = "api:jobs:dispatch"
DEFAULT_PREFIX = "queue"
SCHEMES = ("redis", "rediss")
DELAY_SCAN_BATCH = 100
BLOCK_SECONDS = 1.0  # longest BRPOP; also the longest a due delayed message waits
MIN_BLOCK_SECONDS = 0.05
CONNECT_TIMEOUT = 2.0
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0

# Schedule messages for "now + ARGV[1] ms" on the server's clock.
_PUSH_DELAYED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], due, ARGV[i])
end
return #ARGV - 1
"""

# Move up to ARGV[1] due members to the ready list, each only if ZREM removed it;
# return {moved, ms until the next member is due or -1}.
_PROMOTE_DUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call(
  'ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, member in ipairs(due) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local sep = string.find(member, ':', 1, true)
    redis.call('LPUSH', KEYS[2], string.sub(member, sep + 1))
    moved = moved + 1
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then
  wait = math.max(0, math.floor(tonumber(nxt[2]) - now))
end
return {moved, wait}
"""


class Message(BaseModel):
    """What travels through the queue: which execution to claim, nothing more."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_name: str
    execution_id: str


def import_redis() -> ModuleType:
    """The redis package, or an install hint naming the extra.

    :raises ConfigurationError: redis-py is not installed.
    """
    try:
        return importlib.import_module("redis")
    except ImportError as error:
        raise ConfigurationError(
            "queue mode needs the redis package, which is not installed: "
            "pip install 'alepha-jobs[redis]'"
        ) from error


class QueueURL:
    """A parsed queue URL: what redis-py gets, plus our own query options.

    ``prefix`` names the key prefix; ``concurrency`` the consumer threads of this
    process. Both are removed before the URL reaches redis-py.

    :raises ConfigurationError: not a ``redis://`` or ``rediss://`` URL, or an
        option is malformed.
    """

    def __init__(self, url: str, default_concurrency: int) -> None:
        if not isinstance(url, str):
            raise ConfigurationError(f"queue must be a redis:// URL, got {url!r}")
        parts = urlsplit(url)
        shown = redacted(url)
        if parts.scheme not in SCHEMES:
            scheme = parts.scheme or shown
            raise ConfigurationError(
                f"unsupported queue URL scheme {scheme!r} in queue={shown!r}; queue "
                "mode takes redis://host:6379/0 or rediss://host:6380/0 (TLS)"
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.prefix = query.pop("prefix", DEFAULT_PREFIX)
        if not self.prefix:
            raise ConfigurationError(f"queue={shown!r}: prefix must not be empty")
        given = _concurrency(shown, query.pop("concurrency", None))
        self.concurrency = given if given is not None else max(1, default_concurrency)
        self.host = parts.hostname or "localhost"
        try:
            self.port = parts.port or 6379
        except ValueError:
            raise ConfigurationError(
                f"queue={shown!r}: the port is not a number"
            ) from (None)
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ConfigurationError(
                f"queue={shown!r}: the database {database!r} is not a number; "
                "use redis://host:6379/0"
            )
        self.redis_url = urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def redacted(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _concurrency(url: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"queue={url!r}: concurrency must be a whole number of at least 1, "
            f"got {raw!r}"
        )
    return value


class RedisQueue(Dispatcher):
    """Sends executions through Redis and, when started with ``consume``, runs
    consumer threads (``alepha-jobs-queue-N``) that claim and run them here.

    :param url: ``redis://[user:password@]host:port/db[?prefix=P&concurrency=N]``.
    :param default_concurrency: consumer threads when the URL names none.
    :param stopping: whether the runtime began to stop; a message popped then
        goes back to the queue instead of to a runtime that would ignore it.
    :raises ConfigurationError: the URL is not a Redis URL, or redis-py is
        missing.
    """

    kind: Literal["direct", "queue"] = "queue"

    def __init__(
        self,
        url: str,
        default_concurrency: int = 10,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.url = QueueURL(url, default_concurrency)
        self._stopping = stopping
        redis = import_redis()
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        retry = redis.retry.Retry(redis.backoff.NoBackoff(), 1)
        try:
            self.client: Redis = redis.Redis.from_url(
                self.url.redis_url, socket_connect_timeout=CONNECT_TIMEOUT, retry=retry
            )
        except (ValueError, TypeError) as error:
            shown = redacted(url)
            raise ConfigurationError(f"queue={shown!r}: {error}") from None
        self._backoff = redis.backoff.ExponentialWithJitterBackoff(
            cap=BACKOFF_CAP, base=BACKOFF_BASE
        )
        self.ready_key = f"{self.url.prefix}:{QUEUE_NAME}"
        self.delayed_key = f"{self.ready_key}:delayed"
        self._push_delayed = self.client.register_script(_PUSH_DELAYED)
        self._promote = self.client.register_script(_PROMOTE_DUE)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._busy = 0
        self._consuming = False
        self._down_since: float | None = None
        self._last_scan = 0.0
        self._blocking: dict[int, int] = {}
        self._redis = redis

    # the sending side

    def dispatch(
        self, job_name: str, execution_id: str, delay_seconds: float = 0
    ) -> None:
        self.dispatch_many([(job_name, execution_id)], delay_seconds)

    def dispatch_many(
        self, items: Sequence[tuple[str, str]], delay_seconds: float = 0
    ) -> None:
        """One LPUSH for immediate items, one script call for delayed ones.

        :raises QueueError: Redis failed; the rows stay for the sweep.
        """
        if not items:
            return
        messages = [encode(job_name, execution_id) for job_name, execution_id in items]
        with self._translating("dispatch"):
            if delay_seconds > 0:
                members = [f"{uuid.uuid4().hex}:{m}" for m in messages]
                milliseconds = max(1, round(delay_seconds * 1000))
                args = [milliseconds, *members]
                self._push_delayed(keys=[self.delayed_key], args=args)
            else:
                self.client.lpush(self.ready_key, *messages)

    def lock_store(self) -> RedisLockStore:
        """A lock store on the same server and prefix (cron's default here)."""
        from ..locks.redis import RedisLockStore

        return RedisLockStore(self.client, prefix=f"{self.url.prefix}:")

    # lifecycle

    def start(self, consume: bool) -> None:
        """Check that Redis answers, then start the consumers (with ``consume``).

        :raises QueueError: Redis is unreachable; nothing was started.
        """
        with self._translating("start"):
            self.client.ping()
        with self._lock:
            self._consuming = consume
            if not consume:
                return
            self._stop = threading.Event()
            self._threads = [
                threading.Thread(
                    target=self._consume,
                    args=(self._stop,),
                    name=f"alepha-jobs-queue-{index + 1}",
                    daemon=True,
                )
                for index in range(self.url.concurrency)
            ]
            threads = list(self._threads)
        for thread in threads:
            thread.start()
        logger.info(
            "consuming the Redis queue %s at %s with %d threads",
            self.ready_key,
            self.url.address,
            len(threads),
            extra={"event": "queue.started", "threads": len(threads)},
        )

    def stop(self, timeout: float) -> None:
        """Stop popping; a consumer finishes the run it holds. Messages still in
        Redis stay there for other consumers or the next start."""
        with self._lock:
            self._consuming = False
            self._stop.set()
            threads = list(self._threads)
        self._unblock_all()
        for thread in threads:
            thread.join(timeout)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]

    def close(self) -> None:
        self.client.close()

    @property
    def backlog(self) -> int:
        """Runs held by consumers here plus, while consuming, every message in the
        queue (ready or delayed): what :meth:`Jobs.drain` waits for."""
        with self._lock:
            busy, consuming = self._busy, self._consuming
        if not consuming:
            return busy
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(self.ready_key)
            pipe.zcard(self.delayed_key)
            ready, delayed = pipe.execute()
        except self._errors:
            return busy + 1  # unknown; not drained while Redis is away
        return busy + int(ready) + int(delayed)

    # the consuming side

    def _consume(self, stop: threading.Event) -> None:
        """One consumer thread: pop, run, repeat; never raises. Redis failures
        are logged and retried with jittered exponential backoff."""
        failures = 0
        client: Redis | None = None
        try:
            while not (stop.is_set() or self._stopping()):
                try:
                    if client is None:
                        client = self._dedicated_client()
                    raw = self._pop(client, stop)
                except Exception as error:
                    failures += 1
                    self._unreachable(error)
                    self._drop_client(client)
                    client = None
                    stop.wait(self._backoff.compute(failures))
                    continue
                if failures:
                    failures = 0
                    self._reachable()
                if raw is not None and (stop.is_set() or self._stopping()):
                    self._give_back(raw)  # the runtime would ignore it now
                    return
                if raw is not None:
                    self._handle(raw)
        finally:
            self._drop_client(client)

    def _dedicated_client(self) -> Redis:
        """A client on one connection of the pool, so :meth:`stop` can unblock
        its BRPOP with CLIENT UNBLOCK instead of waiting for the timeout."""
        client = self._redis.Redis(
            connection_pool=self.client.connection_pool, single_connection_client=True
        )
        identity = client.client_id()
        with self._lock:
            self._blocking[threading.get_ident()] = identity
        return client

    def _drop_client(self, client: Redis | None) -> None:
        with self._lock:
            self._blocking.pop(threading.get_ident(), None)
        if client is not None:
            try:
                client.close()
            except Exception:
                logger.debug("closing a consumer connection failed", exc_info=True)

    def _unblock_all(self) -> None:
        with self._lock:
            identities = list(self._blocking.values())
        for identity in identities:
            try:
                self.client.client_unblock(identity)
            except Exception:
                logger.debug("CLIENT UNBLOCK %s failed", identity, exc_info=True)

    def _pop(self, client: Redis, stop: threading.Event) -> bytes | str | None:
        """The next ready message, moving due delayed ones first when the list is
        empty or was not scanned for a second; blocks up to a second."""
        if time.monotonic() - self._last_scan < BLOCK_SECONDS:
            raw = client.rpop(self.ready_key)
            if raw is not None:
                return raw  # type: ignore[return-value]
        self._last_scan = time.monotonic()
        _, wait = self._promote(
            keys=[self.delayed_key, self.ready_key],
            args=[DELAY_SCAN_BATCH],
            client=client,
        )
        block = BLOCK_SECONDS if wait < 0 else wait / 1000
        block = min(BLOCK_SECONDS, max(MIN_BLOCK_SECONDS, block))
        if stop.is_set() or self._stopping():
            return None  # stop() may have sent its CLIENT UNBLOCK already
        popped = client.brpop([self.ready_key], timeout=block)
        return None if popped is None else popped[1]

    def _handle(self, raw: bytes | str) -> None:
        with self._lock:
            self._busy += 1
        try:
            message = decode(raw)
            if message is None:
                return
            contextvars.copy_context().run(
                self._process, message.job_name, message.execution_id
            )
        except Exception:
            logger.warning(
                "processing a queued execution failed; its row stays for the sweep",
                exc_info=True,
                extra={"event": "dispatch.failed"},
            )
        finally:
            with self._lock:
                self._busy -= 1

    def _give_back(self, raw: bytes | str) -> None:
        """Return a message popped after stop began to the head of the queue."""
        try:
            self.client.rpush(self.ready_key, raw)
        except Exception:
            logger.info("could not return a message to Redis; the sweep delivers it")

    def _unreachable(self, error: BaseException) -> None:
        with self._lock:
            first, self._down_since = (
                self._down_since is None,
                (self._down_since or time.monotonic()),
            )
        if first:
            logger.warning(
                "Redis queue at %s failed (%s: %s); consumers retry with backoff",
                self.url.address,
                type(error).__name__,
                error,
                extra={"event": "queue.unreachable", "address": self.url.address},
            )
        else:
            logger.debug("Redis queue at %s still failing: %s", self.url.address, error)

    def _reachable(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.info(
                "Redis queue at %s reachable again after %.1fs",
                self.url.address,
                time.monotonic() - since,
                extra={"event": "queue.reconnected", "address": self.url.address},
            )

    @contextlib.contextmanager
    def _translating(self, action: str) -> Iterator[None]:
        """Turn redis-py errors into :class:`QueueError` naming the server."""
        try:
            yield
        except self._errors as error:
            address = self.url.address
            if action == "start":
                message = (
                    f"cannot reach the Redis queue at {address}: {error}; start "
                    "Redis there or fix the queue= URL"
                )
            else:
                message = (
                    f"Redis queue at {address}: {type(error).__name__}: {error}; "
                    "the row is saved and the sweep will deliver it"
                )
            raise QueueError(message) from error


def encode(job_name: str, execution_id: str) -> str:
    return Message(job_name=job_name, execution_id=execution_id).model_dump_json()


def decode(raw: bytes | str) -> Message | None:
    """The message, or ``None`` (logged) when it is not one of ours."""
    try:
        return Message.model_validate_json(raw)
    except ValidationError as error:
        logger.warning(
            "dropped an undecodable queue message %r: %s",
            raw[:200],
            error.errors(include_url=False)[:1],
            extra={"event": "queue.undecodable"},
        )
        return None
