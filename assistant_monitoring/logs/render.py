"""Render log entries for a terminal: one line each, coloured by level."""

from __future__ import annotations

from typing import Any

from assistant_monitoring.logs.jsonformat import RESERVED_FIELDS

_LEVEL_COLORS = {
    "TRACE": "\x1b[2m",
    "DEBUG": "\x1b[36m",
    "INFO": "\x1b[32m",
    "SUCCESS": "\x1b[1;32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;41;37m",
}
DIM, RESET = "\x1b[2m", "\x1b[0m"

# Fields every line has; the others (ids, event fields) are shown as key=value.
_STANDARD = RESERVED_FIELDS


def level_color(level: str) -> str:
    """The ANSI color sequence for a level name ('' when unknown)."""
    return _LEVEL_COLORS.get(level, "")


def render_entry(entry: dict[str, Any], *, color: bool) -> str:
    """``2026-11-23 13:40:01.123 ERROR    logger  message  key=value`` (+ exception)."""
    ts = str(entry.get("ts", ""))[:23].replace("T", " ")
    level = str(entry.get("level", "?"))
    logger = str(entry.get("logger", ""))
    message = str(entry.get("msg", ""))
    context = " ".join(f"{key}={value}" for key, value in entry.items() if key not in _STANDARD)
    if color:
        shown_level = f"{level_color(level)}{level:<8}{RESET}"
        line = f"{DIM}{ts}{RESET} {shown_level} {DIM}{logger}{RESET}  {message}"
        if context:
            line += f"  {DIM}{context}{RESET}"
    else:
        line = f"{ts} {level:<8} {logger}  {message}"
        if context:
            line += f"  {context}"
    exception = entry.get("exception")
    if exception:
        body = "\n".join("    " + part for part in str(exception).splitlines())
        line += "\n" + (f"{level_color('ERROR')}{body}{RESET}" if color else body)
    return line
