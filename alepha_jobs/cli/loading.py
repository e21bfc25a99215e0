"""Finding the application's :class:`~alepha_jobs.Jobs` from ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..app import Jobs
from ..errors import JobsError
from .errors import BAD_INPUT, CliError, exit_code

ENV_APP = "ALEPHA_JOBS_APP"
LOADER_KEY = "alepha_jobs.loader"


def load_jobs(path: str | None) -> Jobs:
    """Import ``module:attribute`` and return the :class:`Jobs` it names.

    The attribute may also be a Flask app carrying the extension, or a
    zero-argument factory returning either.

    :raises CliError: missing path, import error, or not a ``Jobs``.
    """
    if not path:
        raise CliError(
            f"no application: pass --app module:attribute or set {ENV_APP}",
            BAD_INPUT,
        )
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CliError(f"--app {path!r} must look like 'package.module:jobs'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # any import-time failure of user code
        raise CliError(
            f"cannot import {module_name!r} from --app {path!r}: "
            f"{type(error).__name__}: {error}",
            _code(error),
        ) from None
    return _as_jobs(path, _attribute(module, attribute, path))


def _attribute(module: Any, attribute: str, path: str) -> Any:
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise CliError(f"{path!r}: module has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def _as_jobs(path: str, value: Any) -> Jobs:
    if isinstance(value, Jobs):
        return value
    extensions = getattr(value, "extensions", None)
    if isinstance(extensions, dict) and "alepha_jobs" in extensions:
        return extensions["alepha_jobs"].jobs  # type: ignore[no-any-return]
    if callable(value) and not isinstance(value, type):
        try:
            made = value()
        except TypeError:
            made = None
        except (Exception, SystemExit) as error:  # the factory's own failure
            raise CliError(
                f"{path!r} raised {type(error).__name__}: {error}", _code(error)
            ) from None
        if isinstance(made, Jobs):
            return made
    raise CliError(
        f"{path!r} is a {type(value).__name__}, not an alepha_jobs.Jobs; point "
        "--app at the object `Jobs(...)` returned"
    )


def _code(error: BaseException) -> int:
    """Exit code for an app that failed to load: a store or queue that cannot
    be reached is a failure (1), like every other command; the rest is bad
    input (2)."""
    return exit_code(error) if isinstance(error, JobsError) else BAD_INPUT


def set_loader(ctx: click.Context, loader: Callable[[], Jobs]) -> None:
    """Tell the commands below ``ctx`` how to get the runtime (lazily)."""
    cache: dict[str, Jobs] = {}

    def once() -> Jobs:
        if "jobs" not in cache:
            cache["jobs"] = loader()
        return cache["jobs"]

    ctx.meta[LOADER_KEY] = once


def current_jobs() -> Jobs:
    """The runtime of the running command."""
    ctx = click.get_current_context()
    loader = ctx.meta.get(LOADER_KEY)
    if loader is None:
        raise CliError(f"no application: pass --app module:attribute or set {ENV_APP}")
    return loader()  # type: ignore[no-any-return]
