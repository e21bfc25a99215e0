"""Commands that run work: run, worker, run-cron, sweep, trim and purge."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import click

from .. import trim as _trim
from ..app import Jobs
from ..cron.external import HOUSEKEEPING, run_tick
from ..systemd import Notifier
from . import output
from .errors import FAILED, CliError, handled
from .loading import current_jobs
from .params import parse_moment

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _configure_logging(level: str) -> None:
    """The command is an application: it may configure logging, the library not."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    else:
        root.setLevel(level)
    if level != "DEBUG":  # APScheduler narrates every job it adds
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _say(as_json: bool, event: str, text: str, **fields: Any) -> None:
    if as_json:
        click.echo(json.dumps({"event": event, **output.to_jsonable(fields)}))
    else:
        click.echo(f"alepha-jobs: {text}")


class Foreground:
    """Runs a started runtime until SIGTERM or SIGINT, talking to systemd."""

    def __init__(self, jobs: Jobs, as_json: bool) -> None:
        self.jobs = jobs
        self.as_json = as_json
        self.notifier = Notifier()
        self.stop_requested = threading.Event()
        self.signal_name = ""

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop_requested.is_set():
            self.signal_name = signal.Signals(signum).name
        self.stop_requested.set()

    def serve(self, consume: bool, schedule: bool) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self._serve(consume, schedule)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _serve(self, consume: bool, schedule: bool) -> int:
        jobs = self.jobs
        jobs.start(consume=consume, schedule=schedule)
        names = jobs.registered_names()
        what = "worker" if not schedule else "runtime"
        _say(
            self.as_json,
            "ready",
            f"{what} started on {jobs.store.url} with {len(names)} jobs "
            f"(pid {os.getpid()}); SIGTERM or Ctrl-C stops it",
            pid=os.getpid(),
            jobs=names,
            database=jobs.store.url,
        )
        self.notifier.ready(f"running {len(names)} jobs")
        interval = self.notifier.watchdog_interval
        while not self.stop_requested.wait(interval):
            self.notifier.watchdog()
        return self._stop()

    def _stop(self) -> int:
        drain = self.jobs.config.drain_timeout.total_seconds()
        running = len(self.jobs.signals)
        self.notifier.stopping(f"draining up to {drain:g}s")
        _say(
            self.as_json,
            "stopping",
            f"{self.signal_name}: stopped claiming; draining {running} running "
            f"executions for up to {drain:g}s",
            signal=self.signal_name,
            running=running,
            drain_timeout=drain,
        )
        settled = self.jobs.stop()
        aborted = list(self.jobs.signals)  # runs that ignored the abort
        if settled:
            _say(self.as_json, "stopped", "stopped: every run settled", settled=True)
        else:
            _say(
                self.as_json,
                "stopped",
                f"stopped: {len(aborted)} runs still going were aborted; their "
                "rows stay running until another process's sweep recovers them",
                settled=False,
                aborted=aborted,
            )
        return 0


_log_option = click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
)


@click.command("run")
@_log_option
@output.json_option
@handled
def run_command(log_level: str, as_json: bool) -> None:
    """Run everything in the foreground: queue consumers, cron, sweep and trim.

    SIGTERM or SIGINT stops claiming, drains up to drain_timeout and exits 0.
    Under systemd (Type=notify) it sends READY=1, STOPPING=1 and watchdog pings.
    """
    _configure_logging(log_level.upper())
    raise click.exceptions.Exit(Foreground(current_jobs(), as_json).serve(True, True))


@click.command("worker")
@_log_option
@output.json_option
@handled
def worker_command(log_level: str, as_json: bool) -> None:
    """Consume queued executions only: no cron, no periodic sweep or trim."""
    _configure_logging(log_level.upper())
    code = Foreground(current_jobs(), as_json).serve(True, False)
    raise click.exceptions.Exit(code)


@click.command("run-cron")
@click.argument("name")
@click.option(
    "--scheduled-at",
    default="now",
    show_default=True,
    help="The instant this tick stands for (ISO-8601), or 'now' (truncated to "
    "the minute); one instant runs once across every caller.",
)
@output.json_option
@handled
def run_cron_command(name: str, scheduled_at: str, as_json: bool) -> None:
    """One tick of cron job NAME, for external schedulers (cron, systemd timers)."""
    jobs = current_jobs()
    if name in HOUSEKEEPING:
        report = jobs.sweep() if name.endswith("sweep") else jobs.trim()
        _report(as_json, name, dataclasses.asdict(report))
        return
    instant = None
    if scheduled_at not in ("", "now"):
        instant = parse_moment(scheduled_at, "--scheduled-at")
    result = run_tick(jobs, name, instant)
    if as_json:
        output.emit_json(dataclasses.asdict(result))
    else:
        at = output.when(result.instant)
        outcome = "error" if result.failed else "ok"
        outcome = outcome if result.ran else "skipped (ran elsewhere)"
        click.echo(f"{name} at {at}: {outcome}")
    if result.failed:
        raise click.exceptions.Exit(FAILED)


def _report(as_json: bool, what: str, counts: dict[str, int]) -> None:
    if as_json:
        output.emit_json(counts)
        return
    text = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items())
    click.echo(f"{what}: {text}")


@click.command("sweep")
@output.json_option
@handled
def sweep_command(as_json: bool) -> None:
    """Run the reconciliation sweep once: promote due rows, redeliver lost ones,
    recover crashed runs."""
    report = current_jobs().sweep()
    _report(as_json, "sweep", dataclasses.asdict(report))


@click.command("trim")
@output.json_option
@handled
def trim_command(as_json: bool) -> None:
    """Run the trim once: delete rows beyond each job's retention."""
    report = current_jobs().trim()
    _report(as_json, "trim", dataclasses.asdict(report))


@click.command("purge")
@click.option(
    "--unregistered",
    is_flag=True,
    help="Delete every row, live ones included, of jobs the app no longer has.",
)
@output.json_option
@handled
def purge_command(unregistered: bool, as_json: bool) -> None:
    """Delete the rows of unregistered jobs (the trim keeps their live rows)."""
    if not unregistered:
        raise CliError("purge needs --unregistered (the only kind of purge there is)")
    jobs = current_jobs()
    names = jobs.registered_names()
    if not names:
        raise CliError("the app registers no job: refusing to purge every row")
    orphans = {
        name: count
        for name, count in jobs.store.live_counts().items()
        if name not in names
    }
    deleted = 0
    while True:
        batch = _trim.purge(jobs, names, live=True)
        deleted += batch
        if not as_json and batch:
            click.echo(f"purged {deleted} rows...", err=True)
        if batch < _trim.CEILING:
            break
    if as_json:
        output.emit_json({"deleted": deleted, "live_orphans": orphans})
        return
    listed = ", ".join(f"{n} ({c} live)" for n, c in sorted(orphans.items()))
    suffix = f": {listed}" if listed else ""
    click.echo(f"purged {deleted} rows of unregistered jobs{suffix}")


COMMANDS = [
    run_command,
    worker_command,
    run_cron_command,
    sweep_command,
    trim_command,
    purge_command,
]
