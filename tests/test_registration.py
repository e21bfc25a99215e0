"""Registration and naming: SPEC §1.2, §12.1 (#1-#12) and §12.4 #46, DESIGN §8.1."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from alepha_jobs import (
    Backoff,
    InvalidCronExpression,
    Job,
    Jobs,
    JobsError,
    RegistrationError,
    Retention,
    Retry,
    Rule,
)
from alepha_jobs.context import JobContext

from .conftest import MakeJobs

DAILY = "0 3 * * *"


class Payload(BaseModel):
    n: int = 0


def handler(ctx: JobContext[Any]) -> None:
    """Do the work."""


def register(jobs: Jobs, name: str = "app.work", **options: Any) -> Job:
    """Register :func:`handler` (or ``options["handler"]``) under ``name``."""
    function = options.pop("handler", handler)
    return jobs.job(name, **options)(function)


def refusal(jobs: Jobs, name: str = "app.work", **options: Any) -> str:
    """Register and return the message of the :class:`RegistrationError` raised."""
    with pytest.raises(RegistrationError) as caught:
        register(jobs, name, **options)
    return str(caught.value)


@pytest.fixture
def jobs(make_jobs: MakeJobs) -> Jobs:
    return make_jobs()


# §12.1 #1-#5: the shape of a job


def test_cron_and_schema_together_are_refused(jobs: Jobs) -> None:
    """#1: a job is cron-only or queue-only."""
    message = refusal(jobs, cron=DAILY, schema=Payload)

    assert "'app.work'" in message
    assert "cron" in message and "schema" in message
    assert "split" in message


def test_neither_cron_nor_schema_is_refused(jobs: Jobs) -> None:
    """#2."""
    message = refusal(jobs)

    assert "'app.work'" in message
    assert "neither cron nor schema" in message


def test_inline_with_cron_is_refused_because_no_caller_waits(jobs: Jobs) -> None:
    """#3."""
    assert "no caller to block" in refusal(jobs, cron=DAILY, inline=True)


def test_inline_with_retry_is_refused_as_defaults(jobs: Jobs) -> None:
    """#4: keep retry and pass inline per push."""
    message = refusal(jobs, schema=Payload, inline=True, retry=Retry(2))

    assert "cannot both be the default" in message
    assert "inline=True" in message


@pytest.mark.parametrize("factor", [0.5, 0.999, 0, -2, math.nan])
def test_backoff_factor_below_one_or_nan_is_refused(jobs: Jobs, factor: float) -> None:
    """#5: a factor below 1 would make each retry come sooner than the last."""
    retry = Retry(3, backoff=Backoff(1, factor=factor))

    message = refusal(jobs, schema=Payload, retry=retry)

    assert "'app.work'" in message
    assert "factor" in message and "at least 1" in message


@pytest.mark.parametrize("backoff", [None, Backoff(1), Backoff(1, factor=1)])
def test_backoff_factor_of_one_or_more_and_the_default_are_accepted(
    jobs: Jobs, backoff: Backoff | None
) -> None:
    """#5: the check uses the default factor 2 when none is given."""
    job = register(jobs, schema=Payload, retry=Retry(3, backoff=backoff))

    assert jobs.registry["app.work"] is job


# §12.1 #6-#7: names


@pytest.mark.parametrize(
    "name",
    [
        "estates.sweep-commands",
        "quality.prune-runs",
        "system.notifications.send",
        "system.commerce.release-expired-reservations",
        "v2-imports.run",
    ],
)
def test_domain_action_names_are_accepted(jobs: Jobs, name: str) -> None:
    """#6."""
    job = register(jobs, name, schema=Payload)

    assert job.name == name
    assert jobs.registry[name] is job


@pytest.mark.parametrize(
    "name",
    [
        "api:users:purgeExpiredSessions",
        "UserJobs.purgeExpiredSessions",
        "estates.sweepCommands",
        "estates",
        "lore.estates.sweep-commands",
        "estates/sweep",
        "estates.-sweep",
        "estates.sweep--commands",
        "",
    ],
)
def test_malformed_names_are_refused_quoting_the_name(jobs: Jobs, name: str) -> None:
    """#7: the message shows the rule and the offending name in quotes."""
    message = refusal(jobs, name, schema=Payload)

    assert "<domain>.<action>" in message
    assert f"'{name}'" in message
    assert name not in jobs.registry


@pytest.mark.parametrize("name", [None, 42, b"app.work"])
def test_a_name_that_is_not_a_string_is_refused(jobs: Jobs, name: Any) -> None:
    """§1.2 rule 1: ``name`` is not a string."""
    assert "<domain>.<action>" in refusal(jobs, name, schema=Payload)


# §12.1 #8-#9 and DESIGN §8.1: descriptions


@pytest.mark.parametrize("description", ["", "   ", "\t\n"])
def test_a_blank_description_is_refused_naming_the_job(
    jobs: Jobs, description: str
) -> None:
    """#8: an explicit blank description is refused even when a docstring exists."""
    message = refusal(jobs, schema=Payload, description=description)

    assert "'app.work'" in message
    assert "no description" in message


def test_no_description_and_no_docstring_is_refused(jobs: Jobs) -> None:
    """DESIGN §8.1: one of the two is required."""

    def bare(ctx: JobContext[Any]) -> None:
        pass

    message = refusal(jobs, schema=Payload, handler=bare)

    assert "'app.work'" in message
    assert "no description" in message


def test_a_blank_docstring_does_not_count_as_a_description(jobs: Jobs) -> None:
    def blank(ctx: JobContext[Any]) -> None:
        """ """

    assert "no description" in refusal(jobs, schema=Payload, handler=blank)


def test_description_defaults_to_the_first_docstring_line(jobs: Jobs) -> None:
    """DESIGN §8.1."""

    def welcome(ctx: JobContext[Any]) -> None:
        """Send the welcome email.

        Longer explanation that operators do not need.
        """

    job = register(jobs, schema=Payload, handler=welcome)

    assert job.description == "Send the welcome email."


def test_an_explicit_description_wins_over_the_docstring(jobs: Jobs) -> None:
    job = register(jobs, schema=Payload, description="Count the things.")

    assert job.description == "Count the things."


def test_a_description_of_255_characters_is_accepted(jobs: Jobs) -> None:
    """#9."""
    job = register(jobs, schema=Payload, description="x" * 255)

    assert job.description == "x" * 255


@pytest.mark.parametrize(
    ("description", "length"),
    [("x" * 256, 256), ("x" * 300, 300), ("x" * 250 + " " * 6, 256)],
)
def test_a_description_over_255_characters_is_refused(
    jobs: Jobs, description: str, length: int
) -> None:
    """#9: the raw length counts, trailing blanks included."""
    message = refusal(jobs, schema=Payload, description=description)

    assert f"{length} characters" in message
    assert "at most 255" in message
    assert "'app.work'" in message


# §1.2 rule 4 and #12: names already taken


def test_a_name_registered_twice_is_refused(jobs: Jobs) -> None:
    """§1.2 rule 4."""
    first = register(jobs, schema=Payload)

    message = refusal(jobs, schema=Payload)

    assert message == "Job already registered: app.work"
    assert jobs.registry["app.work"] is first


def test_a_queue_name_cannot_be_reused_by_a_cron_job(jobs: Jobs) -> None:
    register(jobs, schema=Payload)

    assert refusal(jobs, cron=DAILY) == "Job already registered: app.work"


@pytest.mark.parametrize("name", ["system.jobs.sweep", "system.jobs.trim"])
@pytest.mark.parametrize("shape", [{"cron": DAILY}, {"schema": Payload}])
def test_the_internal_cron_names_are_reserved(
    jobs: Jobs, name: str, shape: dict[str, Any]
) -> None:
    """#12: the sweep and the trim occupy these two names."""
    message = refusal(jobs, name, **shape)

    assert name in message
    assert name not in jobs.registry


def test_a_refused_registration_leaves_the_name_free(jobs: Jobs) -> None:
    refusal(jobs, schema=Payload, cron=DAILY)

    job = register(jobs, schema=Payload)

    assert jobs.registry["app.work"] is job


# §12.1 #10-#11: retention rules


@pytest.mark.parametrize(
    ("retention", "words"),
    [
        (Retention(ok=Rule()), "neither 'last' nor 'days'"),
        (Retention(error=Rule()), "neither 'last' nor 'days'"),
        (Retention(ok=Rule(last=0)), "at least 1"),
        (Retention(error=Rule(last=1.5)), "at least 1"),  # type: ignore[arg-type]
        (Retention(ok=Rule(last=-4)), "at least 1"),
        (Retention(error=Rule(days=0)), "positive"),
        (Retention(ok=Rule(days=-3)), "positive"),
        (Retention(ok=Rule(days=math.nan)), "positive"),
        (Retention(ok=Rule(last=5), error=Rule(days=0)), "positive"),
    ],
)
def test_invalid_retention_rules_are_refused_naming_the_job(
    jobs: Jobs, retention: Retention, words: str
) -> None:
    """#10."""
    message = refusal(jobs, schema=Payload, retention=retention)

    assert words in message
    assert "'app.work'" in message


@pytest.mark.parametrize(
    "retention",
    [
        Retention(ok=False, error=False),
        Retention(ok=Rule(last=1), error=Rule(days=0.5)),
        Retention(ok=Rule(days=lambda: -1)),  # a callable is read live, not here
        Retention(),
    ],
)
def test_valid_retention_is_accepted(jobs: Jobs, retention: Retention) -> None:
    """#11, and §1.2 rule 10: a function-valued ``days`` is not checked here."""
    job = register(jobs, schema=Payload, retention=retention)

    assert jobs.registry["app.work"] is job


def test_retention_is_checked_on_cron_jobs_too(jobs: Jobs) -> None:
    message = refusal(jobs, cron=DAILY, retention=Retention(ok=Rule(last=0)))

    assert "at least 1" in message


# §1.2 rule 11: cron expressions


@pytest.mark.parametrize("expression", ["not a cron", "61 * * * *", "* * *"])
def test_an_unparsable_cron_expression_is_refused(jobs: Jobs, expression: str) -> None:
    """§1.2 rule 11."""
    with pytest.raises(InvalidCronExpression) as caught:
        register(jobs, cron=expression)

    assert f"Invalid cron expression '{expression}' for job 'app.work'" in str(
        caught.value
    )
    assert "app.work" not in jobs.registry


def test_a_valid_cron_job_registers_as_cron_kind(jobs: Jobs) -> None:
    job = register(jobs, cron=DAILY)

    assert job.kind == "cron"
    assert jobs.effective_mode("app.work") == "cron"


# §1.2: the order of the checks


def _preregistered(jobs: Jobs) -> Jobs:
    register(jobs, schema=Payload)
    return jobs


BAD_FACTOR = Retry(1, backoff=Backoff(1, factor=0.5))
BAD_RETENTION = Retention(ok=Rule())


@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        # 1 before 2: a bad name and no description
        ("App.Work", {"description": " ", "schema": Payload}, "<domain>.<action>"),
        # 2 before 4: blank description on a taken name
        ("app.work", {"description": "", "schema": Payload}, "no description"),
        # 3 before 4: long description on a taken name
        ("app.work", {"description": "x" * 256, "schema": Payload}, "at most 255"),
        # 4 before 5: a taken name with cron and schema
        ("app.work", {"cron": DAILY, "schema": Payload}, "already registered"),
    ],
)
def test_identity_checks_come_first_in_spec_order(
    jobs: Jobs, name: str, options: dict[str, Any], words: str
) -> None:
    """§1.2 rules 1-5: the first broken rule is the one reported."""
    assert words in refusal(_preregistered(jobs), name, **options)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        # 5 before 7
        ({"cron": DAILY, "schema": Payload, "inline": True}, "split"),
        # 6 before 8
        ({"inline": True, "retry": Retry(1)}, "neither cron nor schema"),
        # 7 before 9
        ({"cron": DAILY, "inline": True, "retry": BAD_FACTOR}, "no caller to block"),
        # 8 before 9
        (
            {"schema": Payload, "inline": True, "retry": BAD_FACTOR},
            "cannot both be the default",
        ),
        # 9 before 10
        (
            {"schema": Payload, "retry": BAD_FACTOR, "retention": BAD_RETENTION},
            "factor",
        ),
        # 10 before 11
        (
            {"cron": "not a cron", "retention": BAD_RETENTION},
            "neither 'last' nor 'days'",
        ),
    ],
)
def test_shape_checks_follow_in_spec_order(
    jobs: Jobs, options: dict[str, Any], words: str
) -> None:
    """§1.2 rules 5-11."""
    assert words in refusal(jobs, **options)


# registration errors belong to the library's tree


@pytest.mark.parametrize(
    "options",
    [
        {"name": "Bad.Name", "schema": Payload},
        {"description": "", "schema": Payload},
        {"cron": DAILY, "schema": Payload},
        {"schema": Payload, "retention": BAD_RETENTION},
        {"cron": "not a cron"},
        {"schema": dict},
        {"schema": Payload, "use": ["not callable"]},
    ],
)
def test_registration_errors_are_registration_and_jobs_errors(
    jobs: Jobs, options: dict[str, Any]
) -> None:
    with pytest.raises(RegistrationError) as caught:
        register(jobs, **options)

    assert isinstance(caught.value, JobsError)


# §12.4 #46 and §1.5: middleware, through a started runtime


def _run_once(jobs: Jobs, job: Job) -> None:
    """Start the runtime, push one payload and wait for the run to end."""
    ended = threading.Event()
    jobs.on("job:end", lambda event: ended.set())
    jobs.start()

    job.push({"n": 1})

    assert ended.wait(5), "the run did not end"


def _tracing(trace: list[str], label: str) -> Callable[..., Any]:
    def middleware(ctx: JobContext[Any], call_next: Callable[[], Any]) -> Any:
        trace.append(f"{label}:before")
        result = call_next()
        trace.append(f"{label}:after")
        return result

    return middleware


def _traced_handler(trace: list[str]) -> Callable[[JobContext[Any]], None]:
    def work(ctx: JobContext[Any]) -> None:
        """Record that the handler ran."""
        trace.append(f"handler:{ctx.payload.n}")

    return work


def test_a_middleware_wraps_the_handler(make_jobs: MakeJobs) -> None:
    """#46: ``use=[mw]`` traces mw:before, handler, mw:after."""
    jobs, trace = make_jobs(), []
    job = register(
        jobs,
        schema=Payload,
        use=[_tracing(trace, "mw")],
        handler=_traced_handler(trace),
    )

    _run_once(jobs, job)

    assert trace == ["mw:before", "handler:1", "mw:after"]


def test_two_middlewares_nest_like_an_onion(make_jobs: MakeJobs) -> None:
    """#46 and §1.5: the first declared is the outermost."""
    jobs, trace = make_jobs(), []
    job = register(
        jobs,
        schema=Payload,
        use=[_tracing(trace, "first"), _tracing(trace, "second")],
        handler=_traced_handler(trace),
    )

    _run_once(jobs, job)

    assert trace == [
        "first:before",
        "second:before",
        "handler:1",
        "second:after",
        "first:after",
    ]


def test_a_job_without_middleware_runs_normally(make_jobs: MakeJobs) -> None:
    """#46."""
    jobs, trace = make_jobs(), []
    job = register(jobs, schema=Payload, handler=_traced_handler(trace))

    _run_once(jobs, job)

    assert trace == ["handler:1"]


def test_a_middleware_that_skips_call_next_skips_the_handler(
    make_jobs: MakeJobs,
) -> None:
    """§1.5: the registered handler is the wrapped pipeline."""
    jobs, trace = make_jobs(), []

    def gate(ctx: JobContext[Any], call_next: Callable[[], Any]) -> None:
        trace.append("gate")

    job = register(jobs, schema=Payload, use=[gate], handler=_traced_handler(trace))

    _run_once(jobs, job)

    assert trace == ["gate"]


# cron-only options on a queue job


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"timezone": "Europe/Paris"}, "timezone applies to cron jobs only"),
        ({"catch_up": True}, "catch_up applies to cron jobs only"),
    ],
    ids=["timezone", "catch-up"],
)
def test_a_cron_only_option_on_a_queue_job_is_refused(
    jobs: Jobs, options: dict[str, Any], words: str
) -> None:
    message = refusal(jobs, schema=Payload, **options)

    assert "'app.work'" in message and words in message
    assert "app.work" not in jobs.registry


def test_a_queue_job_may_spell_out_the_default_timezone(jobs: Jobs) -> None:
    register(jobs, schema=Payload, timezone="UTC")

    assert "app.work" in jobs.registry
