"""A Flask app with background jobs: a signup route pushes a welcome email job,
and a cron job counts the day's signups every night.

    pip install 'alepha-jobs[flask]'
    flask --app examples/flask_app.py run --debug      # jobs start in the child
    gunicorn -w 3 -c examples/gunicorn.conf.py 'examples.flask_app:app'
    flask --app examples/flask_app.py jobs executions  # same commands as alepha-jobs

    curl -X POST localhost:5000/signup -d email=ada@example.com
"""

from __future__ import annotations

import os
import sqlite3

from flask import Flask, jsonify, request
from pydantic import BaseModel

from alepha_jobs import JobContext, Retry
from alepha_jobs.flask import JobsExtension

app = Flask(__name__)
app.config.from_mapping(
    ALEPHA_JOBS_DATABASE_URL=os.environ.get(
        "ALEPHA_JOBS_DATABASE_URL", "sqlite:///flask_app_jobs.db"
    ),
    ALEPHA_JOBS_DRAIN_TIMEOUT="10 seconds",
    ALEPHA_JOBS_ADMIN_TOKEN=os.environ.get("ADMIN_TOKEN"),  # mounts /admin/jobs
    ALEPHA_JOBS_CRON_ROUTE=True,  # /_alepha/cron/<name> for external schedulers
    USERS_DB=os.environ.get("USERS_DB", "flask_app_users.db"),
)
extension = JobsExtension(app)
jobs = extension.jobs


def users() -> sqlite3.Connection:
    connection = sqlite3.connect(app.config["USERS_DB"])
    connection.execute(
        "CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, welcomed INTEGER "
        "DEFAULT 0, created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )
    return connection


class Welcome(BaseModel):
    email: str


@jobs.job("emails.welcome", schema=Welcome, retry=Retry(3), timeout=30)
def send_welcome(ctx: JobContext[Welcome]) -> None:
    """Send the welcome email to a new user."""
    with users() as connection:  # stands in for an SMTP call; idempotent
        connection.execute(
            "UPDATE users SET welcomed = 1 WHERE email = ?", (ctx.payload.email,)
        )
    app.logger.info("welcomed %s", ctx.payload.email)


@jobs.job("reports.signups", cron="0 3 * * *", timezone="Europe/Paris")
def count_signups(ctx: JobContext[None]) -> None:
    """Count yesterday's signups."""
    with users() as connection:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM users WHERE created_at >= date(?, '-1 day')",
            (ctx.now.date().isoformat(),),
        ).fetchone()
    app.logger.info("signups in the last day: %d", count)


@app.post("/signup")
def signup() -> tuple[object, int]:
    email = request.form.get("email") or (request.get_json(silent=True) or {}).get(
        "email"
    )
    if not email:
        return jsonify(error="email is required"), 400
    with users() as connection:
        connection.execute("INSERT OR IGNORE INTO users (email) VALUES (?)", (email,))
    execution_id = send_welcome.push({"email": email}, key=f"welcome:{email}")
    return jsonify(email=email, welcome_job=execution_id), 202


@app.get("/users/<email>")
def user(email: str) -> tuple[object, int]:
    with users() as connection:
        row = connection.execute(
            "SELECT email, welcomed FROM users WHERE email = ?", (email,)
        ).fetchone()
    if row is None:
        return jsonify(error="no such user"), 404
    return jsonify(email=row[0], welcomed=bool(row[1])), 200
