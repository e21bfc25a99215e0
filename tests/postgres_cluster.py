"""A private, throwaway Postgres server that a test may stop and start at will.

The shared test server (tests/postgres_service.py) must never be restarted: other
test runs use it at the same time. This one lives in a temporary directory, on a
free port, built with the ``initdb`` and ``pg_ctl`` of the local installation
(``/usr/lib/postgresql/*/bin``, or ``ALEPHA_JOBS_PG_BIN``). As root the commands
run as the ``postgres`` user, since Postgres refuses to run as root. Tests using
it skip when the binaries are absent, and fail with
``ALEPHA_JOBS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    configured = os.environ.get("ALEPHA_JOBS_PG_BIN")
    found = (
        [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    )
    for directory in reversed(found):
        if (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One private server: ``url`` for clients, ``stop()`` and ``start()``."""

    def __init__(self, bin_dir: Path, root: Path, password: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.password = password
        user = "postgres" if password is None else f"postgres:{password}"
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """Create the cluster: trust, or a password over TCP when one is set."""
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        auth = ["-A", "trust"]
        if self.password is not None:
            secret = self.root / "password"
            secret.write_text(self.password)
            if os.geteuid() == 0:
                shutil.chown(secret, user="postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256"]
            auth.append(f"--pwfile={secret}")
        self._run(
            "initdb", "-D", str(self.data), *auth, "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@contextmanager
def private_cluster(password: str | None = None) -> Iterator[Cluster]:
    """Yield a started private server; stop it and delete its files afterwards.

    :param password: the ``postgres`` user's password over TCP (default: trust).
    """
    bin_dir = _bin_dir()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        reason = "no initdb/pg_ctl under /usr/lib/postgresql/*/bin (ALEPHA_JOBS_PG_BIN)"
        if os.environ.get("ALEPHA_JOBS_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="alepha-pg-"))
    cluster = Cluster(bin_dir, root, password)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
