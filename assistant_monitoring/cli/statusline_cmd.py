"""``assistant monitor statusline``: the full-CLI path of the one-line status.

The ``assistant`` launcher answers most calls before this module is imported
(:func:`assistant_monitoring.statusline.fast_main`); this command runs when that
path stepped aside (``--help``, a setting that does not validate, a damaged store)
and says what is wrong, in one line.
"""

from __future__ import annotations

import typer

from assistant_monitoring.cli.state import current_state
from assistant_monitoring.statusline import DEFAULT_FORMAT, FIELDS

_FIELDS_HELP = "; ".join(f"{{{name}}} {text}" for name, text in FIELDS.items())


def statusline(
    line_format: str = typer.Option(
        DEFAULT_FORMAT, "--format", "-f", help=f"The line, with fields: {_FIELDS_HELP}."
    ),
    tz: str | None = typer.Option(
        None, "--tz", help="Where today begins (IANA name). Default: MONITOR_TIMEZONE, else local."
    ),
) -> None:
    """One short line for a shell prompt or tmux: today's cost, runs, error rate,
    health and open breakers. Quick (well under 60 ms): safe to run on every prompt.

    When the metrics store cannot be read at once (locked by another process,
    damaged, not a file) it prints "?" and exits 0; `--debug` says why, and so does
    `assistant db check`.

    Examples:

      assistant monitor statusline

      assistant monitor statusline --format '{health} {cost}/{budget} {runs}r'

      tmux: set -g status-right '#(assistant monitor statusline)'
    """
    import sqlite3
    import time

    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.statusline import (
        LOCK_WAIT_SECONDS,
        MARKER,
        Unreadable,
        check_template,
        read_today,
        render,
    )
    from assistant_monitoring.usage.service import report_zone

    problem = check_template(line_format)
    if problem is not None:
        raise UsageError(f"--format: {problem}")
    loaded = current_state().load()
    settings = loaded.settings
    zone = report_zone(settings, tz)
    try:
        today = read_today(settings.monitoring_db_path, zone, time.time())
    except (Unreadable, sqlite3.Error) as error:
        # In a prompt: the marker, exit 0; the reason only when asked for.
        if current_state().debug:
            reason = str(error)
            cause = error.__cause__ if isinstance(error, Unreadable) else error
            if isinstance(cause, sqlite3.Error):
                from assistant_monitoring.sqlitefile import Subject, diagnose

                subject = Subject(settings.monitoring_db_path, "the metrics store", "")
                reason = diagnose(subject, cause, busy_timeout_ms=LOCK_WAIT_SECONDS * 1000).message
            typer.echo(f"statusline: {reason}", err=True)
        typer.echo(MARKER)
        return
    typer.echo(
        render(
            today,
            line_format,
            daily_budget=settings.alerts.daily_budget_usd,
            profile=loaded.profile,
        )
    )
