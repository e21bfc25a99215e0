"""``alepha-jobs``: run, inspect and administer a :class:`~alepha_jobs.Jobs` app.

The application is found through ``--app module:attribute`` or
``ALEPHA_JOBS_APP``; commands that need it import it only when they run, so
``cron-next`` works without one.
"""

from __future__ import annotations

import shlex
import shutil

try:
    import click
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "the alepha-jobs command needs click: pip install 'alepha-jobs[cli]'"
    ) from error

from .commands import COMMANDS as _ADMIN
from .errors import EXIT_CODES_HELP
from .export import COMMAND_KEY, export_command
from .loading import ENV_APP, load_jobs, set_loader
from .runtime import COMMANDS as _RUNTIME

ALL_COMMANDS = [*_RUNTIME, *_ADMIN, export_command]


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--app",
    "app_path",
    envvar=ENV_APP,
    metavar="MODULE:ATTRIBUTE",
    help=f"Where the Jobs object lives, e.g. myapp.tasks:jobs (env {ENV_APP}).",
)
@click.version_option(package_name="alepha-jobs")
@click.pass_context
def cli(ctx: click.Context, app_path: str | None) -> None:
    """Durable background jobs and cron: run them, look at them, fix them."""
    set_loader(ctx, lambda: load_jobs(app_path))
    program = shutil.which("alepha-jobs") or "alepha-jobs"
    ctx.meta[COMMAND_KEY] = (
        f"{program} --app {shlex.quote(app_path)}" if app_path else program
    )


for _command in ALL_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """The console-script entry point."""
    cli(prog_name="alepha-jobs")


__all__ = ["ALL_COMMANDS", "cli", "main"]
