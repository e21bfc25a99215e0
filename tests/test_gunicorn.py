"""The Flask extension under a real gunicorn with three workers: every worker runs
its own runtime from the ``post_worker_init`` hook, and a cron job firing every
second runs once per instant. Run with ``-s`` to see the figures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
INSTANTS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lines(log: Path, kind: str) -> list[list[str]]:
    if not log.exists():
        return []
    return [
        line.split() for line in log.read_text().splitlines() if line.startswith(kind)
    ]


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed")
def test_three_gunicorn_workers_run_each_cron_instant_once(
    store_kind: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLASK_CRON_APP_DB": f"sqlite:///{tmp_path}/jobs.db",
        "FLASK_CRON_APP_LOG": str(log),
    }
    server = subprocess.Popen(
        [
            str(GUNICORN),
            "-c",
            str(ROOT / "tests" / "gunicorn_test.conf.py"),
            "-b",
            f"127.0.0.1:{port}",
            "tests.flask_cron_app:app",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_until(lambda: len(lines(log, "booted")) == 3, timeout=30)
        booted = len(lines(log, "tick"))
        assert wait_until(
            lambda: len({t[2] for t in lines(log, "tick")[booted:]}) > INSTANTS,
            timeout=30,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200 and "pid" in json.loads(reply.read())
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()

    ticks = lines(log, "tick")
    per_instant = Counter(instant for _, _, instant in ticks)
    workers = {pid for _, pid in lines(log, "booted")}
    ran_by = Counter(pid for _, pid, _ in ticks)
    print(f"\n{len(per_instant)} instants, {len(ticks)} runs, by worker {dict(ran_by)}")
    assert server.returncode == 0, output
    assert len(per_instant) > INSTANTS
    assert max(per_instant.values()) == 1, per_instant.most_common(3)
    assert set(ran_by) <= workers
