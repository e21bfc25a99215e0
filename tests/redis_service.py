"""The test Redis: a key prefix per test, and private servers a test may kill.

The shared server is ``ALEPHA_JOBS_TEST_REDIS`` (default 127.0.0.1:6379, db 0).
Tests never flush it: each uses its own key prefix and deletes only keys under
that prefix (SCAN, never KEYS). A test that restarts Redis starts its own
``redis-server`` on a free port instead. With ``ALEPHA_JOBS_REQUIRE_SERVICES=1``
an unreachable server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .conftest import wait_until

SERVER = os.environ.get("ALEPHA_JOBS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> None:
    if os.environ.get("ALEPHA_JOBS_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def client(url: str = SERVER) -> Any:
    """A client for ``url``; skip (or fail) if unreachable."""
    try:
        import redis

        connection = redis.Redis.from_url(url, socket_connect_timeout=2)
        connection.ping()
    except Exception as error:  # ImportError or any redis error
        unavailable(f"Redis at {url} is unreachable: {error}")
    return connection


def new_prefix() -> str:
    return f"alepha-jobs-test-{uuid.uuid4().hex[:16]}"


def queue_url(prefix: str, server: str = SERVER, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": prefix, **options}.items())
    return f"{server}{'&' if '?' in server else '?'}{query}"


def delete_prefix(connection: Any, prefix: str) -> None:
    """Delete this test's keys only."""
    for key in connection.scan_iter(match=f"{prefix}:*", count=500):
        connection.delete(key)


@contextmanager
def fresh_prefix() -> Iterator[str]:
    """Yield a key prefix no other test uses; delete its keys afterwards."""
    connection = client()
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        delete_prefix(connection, prefix)
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of one test on a free port, without persistence, so a
    restart loses everything it held (the worst case for the queue)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.binary = str(binary)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._answers, timeout=10), f"redis on {self.port}"

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False
