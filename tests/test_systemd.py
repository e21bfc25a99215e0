"""sd_notify over a real unix datagram socket (alepha_jobs.systemd)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from alepha_jobs.systemd import Notifier


def bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with bound(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})

        sent = [notifier.ready("up"), notifier.watchdog(), notifier.stopping()]

        received = [sock.recv(1024).decode() for _ in range(3)]
    assert sent == [True, True, True]
    assert received == ["READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_names_start_with_at() -> None:
    name = f"alepha-jobs-test-{uuid.uuid4().hex}"
    with bound("\0" + name) as sock:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(1024) == b"READY=1"


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})

    assert not notifier.enabled
    assert notifier.ready() is False


def test_a_vanished_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})

    assert notifier.ready() is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
    ],
)
def test_watchdog_interval_is_half_the_timeout(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier(env).watchdog_interval == interval
