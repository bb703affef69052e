"""``assistant monitor logs``: the last log lines, filtered, newest last; ``--follow``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from assistant_monitoring.cli.state import current_state

_LEVEL_NAMES = ("trace", "debug", "info", "success", "warning", "error", "critical")


def logs(
    level: str = typer.Option(
        "info", "--level", "-l", help=f"Minimum level: {', '.join(_LEVEL_NAMES)}."
    ),
    lines: int = typer.Option(100, "--lines", "-n", min=0, help="How many lines to show."),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only lines newer than this: 30m, 2h, 7d or an ISO time (lines without a time"
        " are left out).",
    ),
    grep: str | None = typer.Option(
        None, "--grep", "-g", help="Only lines containing this text (case-insensitive)."
    ),
    conversation: str | None = typer.Option(
        None, "--conversation", "-c", help="Only lines of this conversation id."
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines as they come (Ctrl-C stops)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON lines."),
    file: Path | None = typer.Option(
        None, "--file", help="Read this log file (and its rotated siblings) instead."
    ),
) -> None:
    """Show the last log lines, newest last; times are UTC.

    Reads the live file and the rotated ones from the end, so it is fast on large
    logs. With --level error (and no --file) it reads error.jsonl, which keeps
    errors long after the main log has rotated.

    Examples:

      assistant monitor logs --level error -n 50

      assistant monitor logs --since 30m --grep timeout

      assistant monitor logs -f --conversation 4f2a
    """
    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.logs.follow import follow_logs
    from assistant_monitoring.logs.names import ERROR_FILE_NAME, LOG_FILE_NAME
    from assistant_monitoring.logs.reader import (
        LEVEL_RANK,
        LogFileError,
        LogQuery,
        log_file_exists,
        open_logs,
    )
    from assistant_monitoring.logs.render import render_entry
    from assistant_monitoring.timeparse import parse_since

    min_level = level.upper()
    if min_level not in LEVEL_RANK:
        raise UsageError(f"--level: expected one of {', '.join(_LEVEL_NAMES)} (got '{level}')")
    query = LogQuery(
        lines=lines,
        min_level=min_level,
        since=parse_since(since) if since else None,
        grep=grep,
        conversation=conversation,
    )
    state = current_state()
    if file is None:
        log_dir = state.load().settings.log_dir
        if not log_dir.is_dir():
            typer.echo(f"No logs yet: {log_dir} does not exist.", err=True)
            return
        path = log_dir / LOG_FILE_NAME
        errors_only = LEVEL_RANK[min_level] >= LEVEL_RANK["ERROR"]
        if errors_only and (log_dir / ERROR_FILE_NAME).exists():
            path = log_dir / ERROR_FILE_NAME
    else:
        path = file
        if not log_file_exists(path):
            raise UsageError(f"--file: {path} does not exist")

    color = state.color is not False and sys.stdout.isatty()
    try:
        stream = open_logs(path, query)
    except LogFileError as exc:
        if exc.path == file:
            raise UsageError(f"--file: {exc}") from exc
        raise  # a file in the log directory: not the command line's fault, exit 1
    out = sys.stdout
    # A closed pipe (`| head`) ends the command quietly: click handles EPIPE.
    with stream:
        if not stream.files and not follow:
            typer.echo(f"No log file at {path} yet.", err=True)
            return
        # Written as read: -n 100000000 prints in bounded memory.
        for entry in stream:
            out.write((entry.raw if as_json else render_entry(entry.data, color=color)) + "\n")
        out.flush()
    if stream.skipped:
        noun = "line" if stream.skipped == 1 else "lines"
        typer.echo(f"note: skipped {stream.skipped} malformed or partial {noun}", err=True)
    if follow:
        for entry in follow_logs(path, query, start=stream.end):
            out.write((entry.raw if as_json else render_entry(entry.data, color=color)) + "\n")
            out.flush()
