"""``assistant monitor health``: is it working right now? Colored, --json, exit code."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand
from typer.exceptions import TyperException

from assistant_monitoring.cli.state import current_state
from assistant_monitoring.errors import EXIT_CANNOT_CHECK, EXIT_USAGE

if TYPE_CHECKING:
    from assistant_monitoring.health.model import HealthReport

HEALTH_EPILOG = (
    "Exit codes: 0 healthy, 1 degraded, 2 unhealthy, 3 no verdict (invalid usage or "
    "settings). With --fail-on unhealthy, degraded exits 0."
)


class HealthCommand(TyperCommand):
    """``monitor health``: its usage errors exit 3, never 2, which means "unhealthy".

    A typo in a deploy script's health gate (`--fail-on unhealty`, `--jsn`) must not
    read as an unhealthy service: it is "no verdict", like settings it cannot use.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except TyperException as error:
            # A usage error (exit 2), not --help's clean exit. typer 0.24+ ships click
            # inside itself (a private module): its public TyperException is the base
            # of the usage error it raises, and the exit code is that error's own.
            if getattr(error, "exit_code", None) == EXIT_USAGE:
                error.exit_code = EXIT_CANNOT_CHECK
            raise


def health(
    as_json: bool = typer.Option(False, "--json", help="Print health+json for scripts."),
    check: list[str] = typer.Option(
        [],
        "--check",
        "-c",
        help="Run only this check (repeatable): database, llm, memory, disk, breakers.",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.1, help="Cap the whole run at this many seconds."
    ),
    watch: float | None = typer.Option(
        None, "--watch", "-w", min=0.1, help="Run again every SECONDS until Ctrl-C."
    ),
    fail_on: str = typer.Option(
        "degraded", "--fail-on", help="Lowest status that fails: degraded (default) or unhealthy."
    ),
) -> None:
    """Check the database, the LLM API, memory, disk and circuit breakers, at once.

    The LLM check lists models (GET /v1/models): authenticated, and it spends no tokens.

    Examples:

      assistant monitor health

      assistant -e production monitor health --json --fail-on unhealthy

      assistant monitor health --check llm --watch 5
    """
    from assistant_monitoring.errors import HealthUsageError, UsageError

    try:
        _health(as_json, check, timeout, watch, fail_on)
    except UsageError as error:
        raise HealthUsageError(str(error)) from None


def _health(
    as_json: bool, check: list[str], timeout: float | None, watch: float | None, fail_on: str
) -> None:
    from assistant_monitoring import __version__
    from assistant_monitoring.errors import CannotCheckError, MonitoringError, UsageError
    from assistant_monitoring.health.service import exit_code_for, run_health
    from assistant_monitoring.metrics.runtime import current_runtime

    if fail_on not in ("degraded", "unhealthy"):
        raise UsageError(f"--fail-on: expected degraded or unhealthy (got '{fail_on}')")
    state = current_state()
    try:
        settings = state.start()
    except MonitoringError as error:
        raise CannotCheckError(f"could not check: {error}") from None
    runtime = current_runtime()
    instrumentation = runtime.instrumentation if runtime else None
    console = None if as_json else state.console()
    title = f"assistant {__version__} · profile {settings.profile}"
    while True:
        report = run_health(
            settings, names=check, total_timeout=timeout, instrumentation=instrumentation
        )
        _log_report(report)
        if as_json:
            document = report.as_json(version=__version__)
            # One line per round with --watch (JSON lines), readable otherwise.
            typer.echo(json.dumps(document, indent=None if watch is not None else 2))
        else:
            assert console is not None
            if watch is not None:
                console.clear()
            from assistant_monitoring.cli.health_view import render_health

            render_health(report, console, title=title)
        if watch is None:
            break
        if runtime is not None:
            runtime.flush()  # each round lands in the store, as it happens
        time.sleep(watch)
    code = exit_code_for(report.status, fail_on)
    if code:
        raise typer.Exit(code)


def _log_report(report: HealthReport) -> None:
    from loguru import logger

    problems = "; ".join(
        f"{c.name}: {c.message}" for c in report.checks if c.status.value != "healthy"
    )
    level = "INFO" if report.status.value == "healthy" else "WARNING"
    logger.bind(event="health", status=report.status.value).log(
        level, f"health {report.status.value}" + (f" ({problems})" if problems else "")
    )
