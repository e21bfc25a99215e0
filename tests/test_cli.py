"""Every ``alepha-jobs`` command through click's runner, on a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from alepha_jobs import Jobs, clock
from alepha_jobs.cli import cli
from alepha_jobs.cli.export import Untranslatable, crontab_line, on_calendar
from alepha_jobs.cron.expression import CronExpression
from tests import cli_app, outbox
from tests.conftest import MakeJobs, wait_until

pytestmark = pytest.mark.sqlite_only

APP = "tests.cli_app:current"
NOW = datetime(2030, 3, 1, 12, 0, tzinfo=clock.UTC)


@pytest.fixture
def jobs(make_jobs: MakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    monkeypatch.setenv("CLI_APP_LOG", str(tmp_path / "runs.log"))
    jobs = cli_app.register(make_jobs(pickup_delay=0.05))
    monkeypatch.setattr(cli_app, "CURRENT", jobs)
    return jobs


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--app", APP, *args], env=env)


def log_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def row(jobs: Jobs, status: str, job_name: str = "tests.echo", **columns: Any) -> str:
    columns.setdefault("created_at", NOW)
    columns.setdefault("updated_at", columns["created_at"])
    return outbox.insert_row(
        jobs,
        job_name=job_name,
        status=status,
        payload='{"text": "hi"}' if job_name == "tests.echo" else None,
        **columns,
    )


def one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.output


# jobs, executions, show


def test_jobs_lists_every_job_aligned(jobs: Jobs) -> None:
    result = invoke("jobs")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "MODE", "CRON", "NEXT"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["tests.echo", "tests.tick", "tests.broken", "tests.sleep"]
    starts = {line.index(line.split()[1]) for line in lines[1:]}
    assert len(starts) == 1  # the MODE column is aligned
    assert "\x1b[" not in result.stdout  # no colour off a terminal


def test_jobs_json(jobs: Jobs) -> None:
    data = json.loads(invoke("jobs", "--json").stdout)

    tick = next(job for job in data if job["name"] == "tests.tick")
    assert (tick["type"], tick["cron"], len(tick["next"])) == ("cron", "* * * * *", 3)
    assert tick["recent"] == {
        "ok": 0,
        "error": 0,
        "last_run": None,
        "last_status": None,
    }


def test_executions_filters_and_pages(jobs: Jobs) -> None:
    ok, error = row(jobs, "ok"), row(jobs, "error", key="invoice-1")
    row(jobs, "pending")

    table = invoke("executions", "tests.echo", "--status", "ok", "--status", "error")
    page = json.loads(invoke("executions", "--key", "invoice", "--json").stdout)
    sized = json.loads(
        invoke("executions", "--size", "1", "--page", "2", "--json").stdout
    )

    assert table.exit_code == 0
    listed = [line.split()[0] for line in table.stdout.splitlines()[1:]]
    assert sorted(listed) == sorted([ok, error])
    assert [e["id"] for e in page["content"]] == [error]
    assert "payload" in page["content"][0] and page["content"][0]["payload"] is None
    assert (sized["total_elements"], len(sized["content"]), sized["page"]) == (3, 1, 2)


def test_the_page_footer_names_the_page_option_counted_from_0(jobs: Jobs) -> None:
    for _ in range(3):
        row(jobs, "ok")

    first = invoke("executions", "--size", "2")
    last = invoke("executions", "--size", "2", "--page", "1")

    assert first.stderr.strip() == (
        "page 1 of 2 (--page 0), 2 of 3 executions; next: --page 1"
    )
    assert last.stderr.strip() == "page 2 of 2 (--page 1), 1 of 3 executions"


def test_executions_bad_input(jobs: Jobs) -> None:
    one_line_error(invoke("executions", "nope.nope"), 2, "nope.nope")
    one_line_error(invoke("executions", "--from", "yesterday"), 2, "ISO-8601")
    one_line_error(invoke("executions", "--from", "2030-01-01T00:00"), 2, "offset")
    assert invoke("executions", "--sort", "payload").exit_code == 2


def test_show_prints_the_whole_row(jobs: Jobs) -> None:
    execution_id = row(jobs, "error", error="smtp down")

    text = invoke("show", execution_id)
    data = json.loads(invoke("show", execution_id, "--json").stdout)

    assert text.exit_code == 0
    assert "smtp down" in text.stdout and "retry, delete" in text.stdout
    assert data["payload"] == {"text": "hi"}
    assert data["can"] == {"retry": True, "cancel": False, "delete": True}


def test_show_unknown_or_malformed_id(jobs: Jobs) -> None:
    missing = str(uuid.uuid4())
    one_line_error(invoke("show", missing), 2, f"Execution not found: {missing}")
    one_line_error(invoke("show", "12"), 2, "not a UUID")


# retry, cancel, delete, trigger


def test_retry(jobs: Jobs) -> None:
    failed, done = row(jobs, "error"), row(jobs, "ok")

    result = invoke("retry", failed, "--json")
    refused = invoke("retry", done)

    assert result.exit_code == 0
    new = jobs.get_execution(json.loads(result.stdout)["id"])
    assert new is not None and new.payload == {"text": "hi"}
    assert new.triggered_by is not None and new.triggered_by.startswith("cli:")
    one_line_error(refused, 3, "Cannot retry execution in 'ok' status")


def test_cancel(jobs: Jobs) -> None:
    pending, done = row(jobs, "pending"), row(jobs, "ok")

    assert invoke("cancel", pending).exit_code == 0
    cancelled = jobs.get_execution(pending)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert invoke("cancel", done).exit_code == 3
    assert invoke("cancel", str(uuid.uuid4())).exit_code == 2


def test_delete_one_and_many(jobs: Jobs) -> None:
    a, b, live = row(jobs, "ok"), row(jobs, "cancelled"), row(jobs, "running")

    one = invoke("delete", a)
    refused = invoke("delete", live)
    many = invoke("delete", b, live, str(uuid.uuid4()), b, "--json")

    assert one.exit_code == 0 and jobs.get_execution(a) is None
    one_line_error(refused, 3, "Cancel it first")
    assert json.loads(many.stdout) == {"deleted": 1, "skipped": 2}
    assert jobs.get_execution(live) is not None
    one_line_error(invoke("delete", str(uuid.uuid4())), 2, "Execution not found")


def test_trigger_a_queue_job_writes_a_pending_row(jobs: Jobs) -> None:
    result = invoke("trigger", "tests.echo", "--payload", '{"text": "yo"}', "--json")

    assert result.exit_code == 0
    created = jobs.get_execution(json.loads(result.stdout)["id"])
    assert created is not None
    assert (created.status, created.payload) == ("pending", {"text": "yo"})


def test_trigger_a_cron_job_runs_it_here(jobs: Jobs, tmp_path: Path) -> None:
    result = invoke("trigger", "tests.tick")

    assert result.exit_code == 0
    assert len(log_lines(tmp_path)) == 1


def test_trigger_bad_input(jobs: Jobs) -> None:
    one_line_error(invoke("trigger", "tests.echo", "--payload", "{nope"), 2, "not JSON")
    one_line_error(invoke("trigger", "tests.echo", "--payload", "[1]"), 2, "object")
    one_line_error(invoke("trigger", "tests.echo", "--payload", "{}"), 2, "text")
    one_line_error(invoke("trigger", "tests.echo"), 2, "payload is required")
    one_line_error(invoke("trigger", "nope.nope"), 2, "Job not found: nope.nope")


# sweep, trim, purge


def test_sweep_and_trim_report(jobs: Jobs) -> None:
    sweep = invoke("sweep", "--json")
    trim = invoke("trim")

    assert json.loads(sweep.stdout) == {
        "promoted": 0,
        "redispatched": 0,
        "never_claimed": 0,
        "recovered": 0,
    }
    assert trim.exit_code == 0 and trim.stdout.startswith("trim: purged 0")


def test_purge_unregistered_deletes_live_rows_of_gone_jobs(jobs: Jobs) -> None:
    gone = [row(jobs, status, job_name="gone.away") for status in ("pending", "ok")]
    kept = row(jobs, "pending")

    refused = invoke("purge")
    result = invoke("purge", "--unregistered", "--json")

    one_line_error(refused, 2, "--unregistered")
    assert json.loads(result.stdout) == {"deleted": 2, "live_orphans": {"gone.away": 1}}
    assert all(jobs.get_execution(i) is None for i in gone)
    assert jobs.get_execution(kept) is not None


# cron-next, run-cron


def test_cron_next_needs_no_app() -> None:
    result = CliRunner().invoke(
        cli, ["cron-next", "30 9 * * mon-fri", "--tz", "Europe/Paris", "-n", "3"]
    )
    data = json.loads(CliRunner().invoke(cli, ["cron-next", "@daily", "--json"]).stdout)

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all("T09:30:00+01:00" in line for line in lines)
    assert len(data) == 5 and all(t.endswith("T00:00:00+00:00") for t in data)


def test_cron_next_bad_expression() -> None:
    result = CliRunner().invoke(cli, ["cron-next", "61 * * * *"])

    one_line_error(result, 2, "minute")
    one_line_error(
        CliRunner().invoke(cli, ["cron-next", "* * * * *", "--tz", "Mars/Base"]),
        2,
        "Mars/Base",
    )


def test_cron_next_caps_the_count() -> None:
    result = CliRunner().invoke(cli, ["cron-next", "* * * * * *", "-n", "1000000"])

    assert result.exit_code == 2 and "1<=x<=1000" in result.stderr


def test_run_cron_runs_an_instant_once(jobs: Jobs, tmp_path: Path) -> None:
    at = "2030-03-01T12:00:00Z"

    first = invoke("run-cron", "tests.tick", "--scheduled-at", at)
    second = invoke("run-cron", "tests.tick", "--scheduled-at", at, "--json")
    other = invoke("run-cron", "tests.tick", "--scheduled-at", "2030-03-01T12:01:00Z")

    assert first.exit_code == 0 and first.stdout.endswith(": ok\n")
    assert json.loads(second.stdout)["ran"] is False
    assert other.exit_code == 0
    assert log_lines(tmp_path) == [
        "tick 2030-03-01T12:00:00+00:00",
        "tick 2030-03-01T12:01:00+00:00",
    ]


def test_run_cron_without_an_instant_takes_the_current_minute(
    jobs: Jobs, tmp_path: Path
) -> None:
    assert invoke("run-cron", "tests.tick").exit_code == 0
    invoke("run-cron", "tests.tick", "--scheduled-at", "now")

    (line,) = log_lines(tmp_path)
    assert line.endswith(":00+00:00")


def test_run_cron_failures_and_bad_input(jobs: Jobs) -> None:
    assert invoke("run-cron", "tests.broken").exit_code == 1
    one_line_error(invoke("run-cron", "tests.echo"), 2, "queue job")
    one_line_error(invoke("run-cron", "nope.nope"), 2, "nope.nope")
    one_line_error(
        invoke("run-cron", "tests.tick", "--scheduled-at", "2030-03-01 12:00"),
        2,
        "offset",
    )
    assert invoke("run-cron", "system.jobs.sweep").exit_code == 0
    assert invoke("run-cron", "system.jobs.trim", "--json").exit_code == 0


# export


def test_export_crontab(jobs: Jobs) -> None:
    result = invoke("export", "crontab", "--command", "/opt/aj")

    lines = result.stdout.splitlines()
    assert "CRON_TZ=UTC" in lines
    tick = next(line for line in lines if "tests.tick" in line)
    assert tick.startswith("* * * * * /opt/aj run-cron tests.tick --scheduled-at ")
    assert "date -u +\\%Y-\\%m-\\%dT\\%H:\\%M:00Z" in tick
    assert any("system.jobs.sweep" in line for line in lines)


def test_export_systemd_writes_timer_and_service_pairs(
    jobs: Jobs, tmp_path: Path
) -> None:
    target = tmp_path / "units"

    result = invoke("export", "systemd", "--output-dir", str(target))

    assert result.exit_code == 0
    names = sorted(p.name for p in target.iterdir())
    assert "alepha-jobs-tests.tick.timer" in names
    assert "alepha-jobs-tests.tick.service" in names
    timer = (target / "alepha-jobs-tests.tick.timer").read_text()
    service = (target / "alepha-jobs-tests.tick.service").read_text()
    assert "OnCalendar=*-*-* *:*:00 UTC" in timer
    assert (
        "--app tests.cli_app:current run-cron tests.tick --scheduled-at now" in service
    )
    assert "Type=oneshot" in service


@pytest.mark.parametrize(
    ("expression", "zone", "calendar"),
    [
        ("0 3 * * *", "Europe/Paris", "*-*-* 03:00:00 Europe/Paris"),
        ("*/15 * * * *", "UTC", "*-*-* *:00,15,30,45:00 UTC"),
        ("30 9 * * mon-fri", "UTC", "Mon,Tue,Wed,Thu,Fri *-*-* 09:30:00 UTC"),
        ("0 0 1 jan,jul *", "UTC", "*-01,07-01 00:00:00 UTC"),
        ("*/20 * * * * *", "UTC", "*-*-* *:*:00,20,40 UTC"),
        ("@weekly", "UTC", "Sun *-*-* 00:00:00 UTC"),
        ("0 12 * * 7", "UTC", "Sun *-*-* 12:00:00 UTC"),
    ],
)
def test_on_calendar_translation(expression: str, zone: str, calendar: str) -> None:
    assert on_calendar(CronExpression(expression, zone)) == calendar


def test_export_systemd_to_an_unwritable_directory_is_one_line(
    jobs: Jobs, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = invoke("export", "systemd", "--output-dir", str(blocker / "units"))

    one_line_error(result, 2, "cannot write the unit files")


@pytest.mark.parametrize("expression", ["0 0 L * *", "0 0 1 * 1", "0 0 * * 5#3"])
def test_untranslatable_expressions_are_refused(expression: str) -> None:
    with pytest.raises(Untranslatable):
        on_calendar(CronExpression(expression))


def test_crontab_has_no_seconds() -> None:
    assert crontab_line(CronExpression("@hourly")) == "0 * * * *"
    with pytest.raises(Untranslatable):
        crontab_line(CronExpression("*/5 * * * * *"))


# bad --app


@pytest.mark.parametrize(
    ("app", "fragment"),
    [
        ("tests.no_such_module:jobs", "cannot import 'tests.no_such_module'"),
        ("tests.cli_app:missing", "has no attribute 'missing'"),
        ("tests.cli_app:Echo", "not an alepha_jobs.Jobs"),
        ("tests.cli_app", "must look like"),
    ],
)
def test_an_app_that_is_not_a_jobs_is_one_line_and_exit_2(
    app: str, fragment: str
) -> None:
    result = CliRunner().invoke(cli, ["--app", app, "jobs"])

    one_line_error(result, 2, fragment)


APP_SOURCES = {
    "exits": "import sys\nsys.exit(3)\n",
    "factory": "def make():\n    raise RuntimeError('settings missing')\n",
    "unreachable": (
        "from alepha_jobs import Jobs\n"
        "jobs = Jobs('postgresql://postgres@127.0.0.1:1/test?connect_timeout=2')\n"
    ),
}


@pytest.mark.parametrize(
    ("source", "app", "code", "fragment"),
    [
        ("exits", "qa_exits:jobs", 2, "SystemExit: 3"),
        ("factory", "qa_factory:make", 2, "raised RuntimeError: settings missing"),
        ("unreachable", "qa_unreachable:jobs", 1, "127.0.0.1:1/test"),
    ],
)
def test_an_app_that_fails_to_load_is_one_line(
    source: str,
    app: str,
    code: int,
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / f"qa_{source}.py").write_text(APP_SOURCES[source])
    monkeypatch.syspath_prepend(str(tmp_path))

    one_line_error(CliRunner().invoke(cli, ["--app", app, "jobs"]), code, fragment)


def test_no_app_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALEPHA_JOBS_APP", raising=False)

    one_line_error(CliRunner().invoke(cli, ["jobs"]), 2, "ALEPHA_JOBS_APP")


def test_the_app_comes_from_the_environment(jobs: Jobs) -> None:
    result = CliRunner().invoke(cli, ["jobs"], env={"ALEPHA_JOBS_APP": APP})

    assert result.exit_code == 0 and "tests.echo" in result.stdout


# run and worker (signals delivered to this process)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock
    sock.close()


def serve_until(
    command: str,
    sock: socket.socket,
    before_stop: Any = None,
    stop_on: Callable[[list[str]], bool] = lambda seen: seen[-1].startswith("READY=1"),
    **env: str,
) -> tuple[Result, list[str]]:
    """Run ``command`` as systemd would; once ``stop_on(messages)`` holds (default:
    READY=1 arrived) call ``before_stop()`` and send SIGINT; return the result and
    every message. Whatever goes wrong in the manager, the command is stopped."""
    messages: list[str] = []

    def manager() -> None:
        signalled = False
        try:
            while not messages or not stop_on(messages):
                messages.append(sock.recv(4096).decode())
            if before_stop is not None:
                before_stop()
            os.kill(os.getpid(), signal.SIGINT)
            signalled = True
            while not messages[-1].startswith("STOPPING=1"):
                messages.append(sock.recv(4096).decode())
        finally:
            if not signalled:  # never leave the command running
                os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=manager, daemon=True)
    thread.start()
    environment = {"NOTIFY_SOCKET": sock.getsockname(), **env}
    result = invoke(*command.split(), env=environment)
    thread.join(10)
    return result, messages


def test_run_notifies_systemd_and_exits_0_on_a_signal(
    jobs: Jobs, notify_socket: socket.socket
) -> None:
    result, messages = serve_until("run", notify_socket)

    assert result.exit_code == 0, result.output
    assert messages[0].startswith("READY=1")
    assert messages[-1].startswith("STOPPING=1")
    assert "SIGINT: stopped claiming" in result.stdout
    assert "stopped: every run settled" in result.stdout


def test_run_sends_watchdog_pings(jobs: Jobs, notify_socket: socket.socket) -> None:
    result, messages = serve_until(
        "run --json",
        notify_socket,
        stop_on=lambda seen: seen.count("WATCHDOG=1") == 2,
        WATCHDOG_USEC="40000",
    )

    assert result.exit_code == 0
    assert messages.count("WATCHDOG=1") >= 2
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events == ["ready", "stopping", "stopped"]


def test_worker_consumes_without_scheduling(
    jobs: Jobs, notify_socket: socket.socket, tmp_path: Path
) -> None:
    pending = row(jobs, "pending", created_at=clock.now() - timedelta(seconds=5))
    scheduler: list[Any] = []

    def consumed() -> None:
        scheduler.append(jobs._scheduler)
        wait_until(lambda: "echo hi" in log_lines(tmp_path))

    result, _ = serve_until("worker", notify_socket, before_stop=consumed)

    assert result.exit_code == 0, result.output
    assert scheduler == [None]
    assert "echo hi" in log_lines(tmp_path)
    assert jobs.get_execution(pending) is None  # ok rows of queue jobs are not kept


def test_row_times_are_shown_in_utc(jobs: Jobs) -> None:
    row(jobs, "ok", started_at=NOW - timedelta(minutes=1))

    result = invoke("executions")

    assert "2030-03-01 11:59:00Z" in result.stdout
