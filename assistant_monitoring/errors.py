"""Errors shown to users, and the exit codes they map to.

Every error here carries a message written for the person at the terminal: what
failed, why, and how to fix it, in one line. The CLI prints ``str(error)`` and exits
with ``error.exit_code``; a traceback appears only with ``--debug``.

Exit codes (documented in ``assistant --help`` and the README):

====  =====================================================================
0     success (``monitor health``: healthy)
1     the command ran and found a problem, or an unexpected error
2     invalid usage or invalid settings (nothing was done); ``monitor health``: unhealthy
3     ``monitor health`` gave no verdict: invalid usage (a typo in a deploy script must
      not read as "unhealthy") or settings it could not check with
130   interrupted (Ctrl-C / SIGINT)
143   terminated (SIGTERM)
====  =====================================================================
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANNOT_CHECK = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class MonitoringError(Exception):
    """Base of every error the toolkit shows to users."""

    exit_code: int = EXIT_FAILURE


class SettingsError(MonitoringError):
    """The profile's settings are invalid; ``problems`` lists every bad field.

    Each problem reads ``ENV_NAME: problem (got 'value')`` with secrets masked.
    """

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str], *, profile: str, env_file: str | None) -> None:
        self.problems = problems
        self.profile = profile
        self.env_file = env_file
        where = f" (from {env_file} and the environment)" if env_file else ""
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"Invalid settings for profile '{profile}'{where}: {count} {noun}\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )


class ProfileError(MonitoringError):
    """The profile itself cannot be loaded: unknown name, missing or malformed file."""

    exit_code = EXIT_USAGE


class UsageError(MonitoringError):
    """A command-line value is wrong (bad duration, unknown level, ...)."""

    exit_code = EXIT_USAGE


class HealthUsageError(UsageError):
    """A ``monitor health`` option is wrong: exit 3, since 2 means "unhealthy" there."""

    exit_code = EXIT_CANNOT_CHECK


class CannotCheckError(MonitoringError):
    """``monitor health`` could not run its checks (invalid settings, unusable paths)."""

    exit_code = EXIT_CANNOT_CHECK


class LogDirectoryError(MonitoringError):
    """The log directory cannot be created or written."""

    exit_code = EXIT_USAGE


def shown(text: str, limit: int = 40) -> str:
    """User input as an error message may echo it: on one line, short, nothing hidden.

    Invisible characters (a NUL, a newline, a stray BOM) are shown escaped: raw, they
    would break the message's single line or make it look like it complains about
    nothing. Past ``limit`` characters the text is cut, with "...".
    """
    pieces = [char if char.isprintable() else repr(char)[1:-1] for char in text[: limit + 1]]
    out = ""
    for piece in pieces:
        if len(out) + len(piece) > limit:
            return out + "..."
        out += piece
    return out + "..." if len(text) > len(pieces) else out


def is_interruption(error: BaseException | None) -> bool:
    """Whether ``error`` means the work was stopped from outside (SIGTERM, Ctrl-C, a
    cancelled task), not that anything failed: such a run ends *interrupted*."""
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return True
    # Without asyncio imported no task can have been cancelled; looked up, not
    # imported, because importing asyncio would cost every command ~15 ms.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(error, asyncio.CancelledError)


__all__ = [
    "EXIT_CANNOT_CHECK",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CannotCheckError",
    "HealthUsageError",
    "LogDirectoryError",
    "MonitoringError",
    "ProfileError",
    "SettingsError",
    "UsageError",
    "is_interruption",
    "shown",
]
