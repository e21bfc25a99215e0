"""``alepha-jobs`` as a real process: every command once, and the SIGTERM drain.

The SIGTERM test plays systemd: it binds the ``NOTIFY_SOCKET``, waits for
``READY=1``, sends SIGTERM with a 1 s job and a 60 s job running and five
executions pending, and checks what the drain did. Run with ``-s`` to see the
figures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alepha_jobs import Jobs, JobsConfig, clock
from tests import cli_app, outbox
from tests.conftest import NEVER, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "alepha-jobs"
DRAIN = 3.0


def command() -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "alepha_jobs.cli"]


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The subprocess environment; the database is the test's SQLite file or
    fresh Postgres schema."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ALEPHA_JOBS_APP": "tests.cli_app:build",
        "ALEPHA_JOBS_DATABASE_URL": db_url,
        "ALEPHA_JOBS_SWEEP_CRON": NEVER,
        "ALEPHA_JOBS_TRIM_CRON": NEVER,
        "ALEPHA_JOBS_DRAIN_TIMEOUT": str(DRAIN),
        "ALEPHA_JOBS_DIRECT_MAX_CONCURRENCY": "2",
        "ALEPHA_JOBS_PICKUP_DELAY": "0.1",
        "ALEPHA_JOBS_RUN_TIMEOUT": "2",
        "CLI_APP_LOG": str(tmp_path / "runs.log"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def jobs(env: dict[str, str]) -> Iterator[Jobs]:
    """The test's own runtime on the same file: it pushes, reads and sweeps."""
    config = JobsConfig(
        sweep_cron=NEVER, trim_cron=NEVER, run_timeout=2, pickup_delay=0.1
    )
    jobs = cli_app.register(Jobs(env["ALEPHA_JOBS_DATABASE_URL"], config=config))
    yield jobs
    jobs.close()


def alepha_jobs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def row(jobs: Jobs, status: str, **columns: Any) -> str:
    now = clock.now()
    return outbox.insert_row(
        jobs,
        job_name="tests.echo",
        status=status,
        created_at=now,
        updated_at=now,
        payload='{"text": "hi"}',
        **columns,
    )


@pytest.mark.sqlite_only
def test_every_command_as_a_process(
    env: dict[str, str], jobs: Jobs, tmp_path: Path
) -> None:
    failed, done, live = row(jobs, "error"), row(jobs, "ok"), row(jobs, "pending")
    extra = row(jobs, "cancelled")
    missing = str(uuid.uuid4())
    cases: list[tuple[list[str], int, str]] = [
        (["--help"], 0, "Exit codes:"),
        (["jobs"], 0, "tests.tick"),
        (["executions", "tests.echo", "--status", "error"], 0, failed),
        (["show", failed], 0, "retry, delete"),
        (["show", missing], 2, f"Execution not found: {missing}"),
        (["retry", failed], 0, f"retried {failed} as "),
        (["cancel", live, "--json"], 0, '"ok": true'),
        (["delete", done], 0, "deleted 1"),
        (["delete", extra, missing], 0, "deleted 1, skipped 1"),
        (["trigger", "tests.echo", "--payload", '{"text": "x"}'], 0, "execution"),
        (["trigger", "tests.echo", "--payload", "{x"], 2, "not JSON"),
        (["trigger", "tests.tick"], 0, "triggered tests.tick"),
        (["sweep"], 0, "sweep: promoted 0"),
        (["trim", "--json"], 0, '"trimmed"'),
        (["purge", "--unregistered"], 0, "purged 0 rows"),
        (["cron-next", "0 9 * * *", "-n", "2"], 0, "T09:00:00+00:00"),
        (["run-cron", "tests.tick", "--scheduled-at", "2030-01-01T00:00:00Z"], 0, "ok"),
        (["run-cron", "tests.broken"], 1, "error"),
        (["export", "crontab"], 0, "run-cron tests.tick"),
        (["export", "systemd", "--json"], 0, "alepha-jobs-tests.tick.timer"),
        (["--app", "tests.nope:jobs", "jobs"], 2, "cannot import 'tests.nope'"),
    ]
    for args, code, fragment in cases:
        result = alepha_jobs(env, *args)
        both = result.stdout + result.stderr
        assert (result.returncode, fragment in both) == (code, True), (args, both)
        assert "Traceback" not in both, args
        if code == 2:
            assert result.stderr.count("\n") == 1, (args, result.stderr)


class Systemd:
    """The manager's side of sd_notify: a bound unix datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(30)

    def expect(self, prefix: str) -> str:
        while True:
            message = self.sock.recv(4096).decode()
            if message.startswith(prefix):
                return message

    def close(self) -> None:
        self.sock.close()


def notifying(
    systemd: Systemd, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    """``alepha-jobs ARGS`` in a child that notifies ``systemd``, output piped."""
    return subprocess.Popen(
        [*command(), *args],
        env={**env, "NOTIFY_SOCKET": systemd.path},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status_of(jobs: Jobs, execution_id: str) -> str | None:
    found = jobs.get_execution(execution_id)
    return found.status if found else None


def test_sigterm_drains_and_leaves_the_rest_to_the_sweep(
    env: dict[str, str], jobs: Jobs, tmp_path: Path
) -> None:
    systemd = Systemd(tmp_path / "notify.sock")
    release = tmp_path / "release"
    process = notifying(systemd, env, "run")
    try:
        systemd.expect("READY=1")
        long = jobs.push("tests.sleep", {"seconds": 60})
        short = jobs.push("tests.sleep", {"seconds": 1, "release": str(release)})
        assert wait_until(
            lambda: {status_of(jobs, long), status_of(jobs, short)} == {"running"}
        )
        pending = [jobs.push("tests.echo", {"text": f"p{i}"}) for i in range(5)]

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        systemd.expect("STOPPING=1")
        release.touch()  # the short job starts its 1 s now, during the drain
        stdout, stderr = process.communicate(timeout=60)
        elapsed = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
        systemd.close()

    print(
        f"\n--- alepha-jobs run (exit {process.returncode}, {elapsed:.2f}s after "
        f"SIGTERM, drain_timeout {DRAIN}s)\n{stdout}{stderr}"
    )
    assert process.returncode == 0
    assert "SIGTERM: stopped claiming; draining 2 running executions" in stdout
    assert "1 runs still going were aborted" in stdout
    assert status_of(jobs, short) == "ok"
    assert status_of(jobs, long) == "running"  # until its lease expires
    for execution_id in pending:
        untouched = jobs.get_execution(execution_id)
        assert untouched is not None
        assert (untouched.status, untouched.attempt) == ("pending", 0)
        assert untouched.started_at is None

    assert wait_until(lambda: jobs.sweep().recovered == 1, timeout=20)
    recovered = jobs.get_execution(long)
    assert recovered is not None and recovered.status == "error"
    assert "lease" in (recovered.error or "") or "crash" in (recovered.error or "")
    total = jobs.executions(None, size=100).total_elements
    assert total == 7  # nothing lost: 1 ok, 1 recovered, 5 pending


def test_worker_process_consumes_and_stops_on_sigterm(
    env: dict[str, str], jobs: Jobs, tmp_path: Path
) -> None:
    systemd = Systemd(tmp_path / "notify.sock")
    process = notifying(systemd, env, "worker", "--json")
    try:
        systemd.expect("READY=1")
        jobs.push("tests.echo", {"text": "from the worker"})
        log = tmp_path / "runs.log"
        assert wait_until(lambda: log.exists() and "from the worker" in log.read_text())
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        systemd.close()

    assert process.returncode == 0
    events = [json.loads(line)["event"] for line in stdout.splitlines()]
    assert events == ["ready", "stopping", "stopped"]
