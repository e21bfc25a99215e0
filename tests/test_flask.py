"""The Flask extension through the test client: start rules, config, ``flask jobs``,
the admin JSON API (SPEC §10.2, #118-#123) and the cron route (DESIGN §8.8)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from alepha_jobs import Jobs, clock
from alepha_jobs.flask import (
    JobsExtension,
    cron_blueprint,
    gunicorn_post_worker_init,
    gunicorn_worker_exit,
)
from tests import cli_app, outbox
from tests.conftest import NEVER, wait_until

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-admin"
READ = "read-only"
SECRET = "cron-secret"

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeApp]:
    monkeypatch.setenv("CLI_APP_LOG", str(tmp_path / "runs.log"))
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    monkeypatch.delenv("CRON_SECRET", raising=False)
    made: list[JobsExtension] = []

    def factory(**config: Any) -> Flask:
        app = Flask(f"test_{len(made)}")
        app.config.update(
            ALEPHA_JOBS_DATABASE_URL=db_url,
            ALEPHA_JOBS_SWEEP_CRON=NEVER,
            ALEPHA_JOBS_TRIM_CRON=NEVER,
            ALEPHA_JOBS_PICKUP_DELAY=0.05,
            **config,
        )
        extension = JobsExtension(app)
        cli_app.register(extension.jobs)
        made.append(extension)
        return app

    yield factory
    for extension in made:
        extension.jobs.close()


def jobs_of(app: Flask) -> Jobs:
    return app.extensions["alepha_jobs"].jobs  # type: ignore[no-any-return]


def log_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


# start rules and settings


def test_auto_starts_on_the_first_request_only(make_app: MakeApp) -> None:
    app = make_app()
    jobs = jobs_of(app)

    assert not jobs._started
    app.test_client().get("/nothing-here")

    assert jobs._started


def test_the_reloader_child_starts_at_once(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")

    assert jobs_of(make_app())._started


def test_start_false_never_starts(make_app: MakeApp) -> None:
    app = make_app(ALEPHA_JOBS_START=False)

    app.test_client().get("/")

    assert not jobs_of(app)._started


def test_settings_come_from_app_config(make_app: MakeApp) -> None:
    app = make_app(ALEPHA_JOBS_DRAIN_TIMEOUT="7 seconds", ALEPHA_JOBS_LOG_MAX_ENTRIES=3)

    config = jobs_of(app).config
    assert (config.drain_timeout, config.log_max_entries) == (timedelta(seconds=7), 3)


def test_gunicorn_hooks_start_and_stop_the_worker_runtime(make_app: MakeApp) -> None:
    app = make_app()
    worker = SimpleNamespace(wsgi=app)

    gunicorn_post_worker_init(worker)
    started = jobs_of(app)._started
    gunicorn_worker_exit(None, worker)

    assert (started, jobs_of(app)._started) == (True, False)


def test_flask_jobs_commands_do_not_start_the_runtime(make_app: MakeApp) -> None:
    app = make_app()
    runner = app.test_cli_runner()

    listing = runner.invoke(args=["jobs", "jobs", "--json"])
    pushed = runner.invoke(
        args=["jobs", "trigger", "tests.echo", "--payload", '{"text": "cli"}', "--json"]
    )
    ticked = runner.invoke(
        args=[
            "jobs",
            "run-cron",
            "tests.tick",
            "--scheduled-at",
            "2030-01-01T00:00:00Z",
        ]
    )
    crontab = runner.invoke(args=["jobs", "export", "crontab"])
    bad = runner.invoke(args=["jobs", "show", str(uuid.uuid4())])

    assert [j["name"] for j in json.loads(listing.output)][0] == "tests.echo"
    created = jobs_of(app).get_execution(json.loads(pushed.output)["id"])
    assert created is not None and created.status == "pending"
    assert ticked.exit_code == 0 and ticked.output.endswith(": ok\n")
    assert " jobs run-cron tests.tick " in crontab.output
    assert bad.exit_code == 2 and "Execution not found" in bad.output
    assert not jobs_of(app)._started


# the example app


def load_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> ModuleType:
    monkeypatch.setenv("ALEPHA_JOBS_DATABASE_URL", url)
    monkeypatch.setenv("USERS_DB", str(tmp_path / "users.db"))
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    spec = importlib.util.spec_from_file_location(
        f"flask_app_{uuid.uuid4().hex}", ROOT / "examples" / "flask_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_signup_pushes_a_welcome_job_that_runs(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example(monkeypatch, tmp_path, db_url)
    client = example.app.test_client()
    try:
        reply = client.post("/signup", data={"email": "ada@example.com"})
        welcomed = wait_until(
            lambda: client.get("/users/ada@example.com").get_json()["welcomed"]
        )
        jobs_listing = client.get(
            "/admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        cron = client.get("/_alepha/cron/reports.signups")
    finally:
        example.jobs.close()

    assert reply.status_code == 202 and reply.get_json()["welcome_job"]
    assert welcomed
    names = [job["name"] for job in jobs_listing.get_json()]
    assert names == ["emails.welcome", "reports.signups"]
    assert (cron.status_code, cron.headers["X-Alepha-Cron-Ran"]) == (200, "true")


# the admin API


@pytest.fixture
def admin_app(make_app: MakeApp) -> Flask:
    return make_app(
        ALEPHA_JOBS_START=False,
        ALEPHA_JOBS_ADMIN_TOKEN=TOKEN,
        ALEPHA_JOBS_ADMIN_READ_TOKEN=READ,
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def row(app: Flask, status: str, **columns: Any) -> str:
    now = clock.now()
    return outbox.insert_row(
        jobs_of(app),
        job_name="tests.echo",
        status=status,
        created_at=now,
        updated_at=now,
        payload='{"text": "hi"}',
        **columns,
    )


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), {"Authorization": TOKEN + "x"}, {"Authorization": "Basic x"}],
    ids=["none", "wrong", "longer", "basic"],
)
def test_every_admin_route_refuses_without_the_token(
    admin_app: Flask, headers: dict[str, str]
) -> None:
    client = admin_app.test_client()
    some = str(uuid.uuid4())

    replies = [
        client.get("/admin/jobs", headers=headers),
        client.get("/admin/jobs/tests.echo/executions", headers=headers),
        client.get(f"/admin/jobs/executions/{some}", headers=headers),
        client.post("/admin/jobs/tests.tick/trigger", headers=headers),
        client.post(f"/admin/jobs/executions/{some}/retry", headers=headers),
        client.post(f"/admin/jobs/executions/{some}/cancel", headers=headers),
        client.delete(f"/admin/jobs/executions/{some}", headers=headers),
        client.post(
            "/admin/jobs/executions/delete", json={"ids": [some]}, headers=headers
        ),
    ]

    assert [r.status_code for r in replies] == [401] * 8
    assert replies[0].get_json() == {"error": "Unauthorized"}


def test_no_admin_routes_without_a_configured_token(make_app: MakeApp) -> None:
    app = make_app(ALEPHA_JOBS_START=False)

    assert app.test_client().get("/admin/jobs", headers=auth("")).status_code == 404


def test_admin_reads(admin_app: Flask) -> None:
    client = admin_app.test_client()
    failed = row(admin_app, "error", key="invoice-1")
    row(admin_app, "ok")

    jobs = client.get("/admin/jobs", headers={"Authorization": f"bearer {TOKEN}"})
    page = client.get(
        "/admin/jobs/tests.echo/executions?status=error&sort=-createdAt&size=5",
        headers=auth(READ),
    )
    one = client.get(f"/admin/jobs/executions/{failed}", headers=auth(TOKEN))

    assert jobs.status_code == 200
    assert [j["name"] for j in jobs.get_json()][:2] == ["tests.echo", "tests.tick"]
    body = page.get_json()
    assert (body["total_elements"], body["size"]) == (1, 5)
    (listed,) = body["content"]
    assert listed["id"] == failed and "payload" not in listed and "logs" not in listed
    assert listed["can"] == {"retry": True, "cancel": False, "delete": True}
    full = one.get_json()
    assert full["payload"] == {"text": "hi"} and "priority" not in full


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/admin/jobs/nope.nope/executions", 404),
        ("/admin/jobs/tests.echo/executions?sort=payload", 400),
        ("/admin/jobs/tests.echo/executions?status=done", 400),
        ("/admin/jobs/tests.echo/executions?from=yesterday", 400),
        ("/admin/jobs/tests.echo/executions?size=x", 400),
        (f"/admin/jobs/executions/{uuid.UUID(int=1)}", 404),
        ("/admin/jobs/executions/not-a-uuid", 400),
    ],
)
def test_admin_read_errors(admin_app: Flask, path: str, status: int) -> None:
    reply = admin_app.test_client().get(path, headers=auth(TOKEN))

    assert reply.status_code == status
    assert reply.get_json()["error"]


def test_admin_deletes(admin_app: Flask) -> None:
    """#118-#121"""
    client = admin_app.test_client()
    done, live, other = (
        row(admin_app, "ok"),
        row(admin_app, "pending"),
        row(admin_app, "error"),
    )

    deleted = client.delete(f"/admin/jobs/executions/{done}", headers=auth(TOKEN))
    conflict = client.delete(f"/admin/jobs/executions/{live}", headers=auth(TOKEN))
    missing = client.delete(f"/admin/jobs/executions/{done}", headers=auth(TOKEN))
    bulk = client.post(
        "/admin/jobs/executions/delete",
        json={"ids": [other, live, other, str(uuid.uuid4())]},
        headers=auth(TOKEN),
    )
    empty = client.post(
        "/admin/jobs/executions/delete", json={"ids": []}, headers=auth(TOKEN)
    )

    assert (deleted.status_code, deleted.get_json()) == (200, {"ok": True})
    assert (
        conflict.status_code == 409
        and "Cancel it first" in conflict.get_json()["error"]
    )
    assert missing.status_code == 404
    assert (bulk.status_code, bulk.get_json()) == (200, {"deleted": 1, "skipped": 2})
    assert empty.status_code == 400
    assert jobs_of(admin_app).get_execution(live) is not None


def test_a_read_token_is_forbidden_to_delete(admin_app: Flask) -> None:
    """#123"""
    client = admin_app.test_client()
    first, second = row(admin_app, "ok"), row(admin_app, "ok")

    forbidden = [
        client.delete(f"/admin/jobs/executions/{first}", headers=auth(READ)),
        client.post(
            "/admin/jobs/executions/delete", json={"ids": [second]}, headers=auth(READ)
        ),
    ]
    allowed = [
        client.delete(f"/admin/jobs/executions/{first}", headers=auth(TOKEN)),
        client.post(
            "/admin/jobs/executions/delete", json={"ids": [second]}, headers=auth(TOKEN)
        ),
    ]

    assert [r.status_code for r in forbidden] == [403, 403]
    assert [r.get_json() for r in allowed] == [
        {"ok": True},
        {"deleted": 1, "skipped": 0},
    ]


def test_admin_actions(admin_app: Flask, tmp_path: Path) -> None:
    client = admin_app.test_client()
    failed, pending = row(admin_app, "error"), row(admin_app, "pending")

    retried = client.post(f"/admin/jobs/executions/{failed}/retry", headers=auth(TOKEN))
    again = client.post(f"/admin/jobs/executions/{pending}/retry", headers=auth(TOKEN))
    cancelled = client.post(
        f"/admin/jobs/executions/{pending}/cancel", headers=auth(TOKEN)
    )
    triggered = client.post("/admin/jobs/tests.tick/trigger", headers=auth(TOKEN))
    pushed = client.post(
        "/admin/jobs/tests.echo/trigger",
        json={"payload": {"text": "admin"}},
        headers=auth(TOKEN),
    )
    unknown = client.post("/admin/jobs/nope.nope/trigger", headers=auth(TOKEN))
    bad = client.post(
        "/admin/jobs/tests.echo/trigger",
        json={"payload": {"x": 1}},
        headers=auth(TOKEN),
    )

    assert retried.status_code == 200
    new = jobs_of(admin_app).get_execution(retried.get_json()["id"])
    assert new is not None and new.triggered_by == "admin-api"
    assert again.status_code == 409
    assert cancelled.get_json() == {"ok": True}
    assert (
        jobs_of(admin_app).get_execution(pending).status  # type: ignore[union-attr]
        == "cancelled"
    )
    assert (triggered.status_code, len(log_lines(tmp_path))) == (200, 1)
    assert pushed.status_code == 200
    assert (unknown.status_code, bad.status_code) == (404, 400)


@pytest.mark.parametrize(
    "body", [{"data": "not json"}, {"json": [1]}, {"json": "text"}], ids=str
)
def test_admin_trigger_with_a_body_that_is_not_an_object_is_400(
    admin_app: Flask, body: dict[str, Any]
) -> None:
    before = jobs_of(admin_app).executions("tests.echo").total_elements

    answer = admin_app.test_client().post(
        "/admin/jobs/tests.echo/trigger", headers=auth(TOKEN), **body
    )

    assert answer.status_code == 400
    assert "JSON object" in answer.get_json()["error"]
    assert jobs_of(admin_app).executions("tests.echo").total_elements == before


# the cron route


@pytest.fixture
def cron_app(make_app: MakeApp) -> Flask:
    return make_app(
        ALEPHA_JOBS_START=False, ALEPHA_JOBS_CRON_ROUTE=True, CRON_SECRET=SECRET
    )


def test_cron_route_needs_the_secret(cron_app: Flask, tmp_path: Path) -> None:
    client = cron_app.test_client()

    missing = client.post("/_alepha/cron/tests.tick")
    wrong = client.post("/_alepha/cron/tests.tick", headers=auth("nope"))
    right = client.get(
        "/_alepha/cron/tests.tick", headers={"Authorization": f"BEARER {SECRET}"}
    )

    assert (missing.status_code, missing.get_data(as_text=True)) == (
        401,
        "Unauthorized",
    )
    assert wrong.status_code == 401
    assert (right.status_code, right.get_data(as_text=True)) == (200, "ok")
    assert len(log_lines(tmp_path)) == 1  # the refused calls ran nothing


def test_cron_route_runs_once_per_scheduled_at(cron_app: Flask, tmp_path: Path) -> None:
    client = cron_app.test_client()
    at = "2030-03-01T12:00:00Z"

    replies = [
        client.post(
            f"/_alepha/cron/tests.tick?scheduled_at={at}", headers=auth(SECRET)
        ),
        client.post(
            "/_alepha/cron/tests.tick", json={"scheduled_at": at}, headers=auth(SECRET)
        ),
        client.post(
            "/_alepha/cron/tests.tick",
            data={"scheduled_at": "2030-03-01T13:00:00+01:00"},
            headers=auth(SECRET),
        ),
        client.post(
            "/_alepha/cron/tests.tick?scheduled_at=2030-03-01T12:01:00Z",
            headers=auth(SECRET),
        ),
    ]

    assert [r.status_code for r in replies] == [200] * 4
    assert [r.headers["X-Alepha-Cron-Ran"] for r in replies] == [
        "true",
        "false",
        "false",
        "true",
    ]
    assert log_lines(tmp_path) == [
        "tick 2030-03-01T12:00:00+00:00",
        "tick 2030-03-01T12:01:00+00:00",
    ]


def test_cron_route_odd_requests(
    cron_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = cron_app.test_client()

    unknown = client.post("/_alepha/cron/nope.nope", headers=auth(SECRET))
    queue = client.post("/_alepha/cron/tests.echo", headers=auth(SECRET))
    naive = client.post(
        "/_alepha/cron/tests.tick?scheduled_at=2030-03-01T12:00:00",
        headers=auth(SECRET),
    )
    sweep = client.post("/_alepha/cron/system.jobs.sweep", headers=auth(SECRET))

    def explode(*args: Any) -> bool:
        raise RuntimeError("lock store down")

    monkeypatch.setattr(jobs_of(cron_app).cron, "tick", explode)
    failed = client.post("/_alepha/cron/tests.tick", headers=auth(SECRET))

    assert (unknown.status_code, queue.status_code) == (200, 200)
    assert naive.status_code == 400
    assert sweep.status_code == 200
    assert (failed.status_code, failed.get_data(as_text=True)) == (500, "cron failed")


def test_cron_route_is_open_without_a_secret_and_reads_the_environment(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(ALEPHA_JOBS_START=False)
    app.register_blueprint(cron_blueprint(jobs_of(app)))
    client = app.test_client()

    open_reply = client.post("/_alepha/cron/tests.tick")
    monkeypatch.setenv("CRON_SECRET", "from-env")
    closed = client.post("/_alepha/cron/tests.tick")
    allowed = client.post("/_alepha/cron/tests.tick", headers=auth("from-env"))

    assert (open_reply.status_code, closed.status_code, allowed.status_code) == (
        200,
        401,
        200,
    )
