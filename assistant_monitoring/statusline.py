"""``assistant monitor statusline``: one short line for a shell prompt or a tmux status bar.

It runs on every prompt, so it must be quick (< 60 ms wall; BENCHMARKS.md): the
standard library only, no typer, no pydantic, no rich. :func:`fast_main` is called
by the ``assistant`` launcher before the CLI is imported; whenever it is unsure
(``--help``, an option it does not know, a setting that does not parse, a damaged
store) it returns None and the full CLI runs the same command with its validation
and one-line errors.

The figures: today's cost, runs and error rate (finished runs since local midnight
in MONITOR_TIMEZONE, from the usage rollup, as ``monitor usage`` counts them), the health glyph (the
newest health check results, if a ``monitor serve`` or ``monitor health`` recorded
some in the last 15 minutes) and the open circuit breakers.

It sits in shell prompts, so whatever state the store is in (locked by another
process, damaged, a FIFO or a device where the file should be) it prints
:data:`MARKER` at once and exits 0: never a wait, never an error on every prompt.
``assistant db check`` (or ``--debug``) says what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import time
from datetime import datetime, tzinfo

TYPE_CHECKING = False  # not typing's, which costs ~5 ms to import
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_FORMAT = "{health} {cost} {runs} runs {error_rate} err{breakers}"
FIELDS = {
    "health": "✓ healthy, ▲ degraded, ✗ unhealthy, · unknown (no recent check)",
    "cost": "today's cost ($0.42; 'unpriced' when nothing could be priced)",
    "cost_usd": "today's cost as a bare number (4 decimals)",
    "runs": "today's runs",
    "errors": "today's failed runs",
    "error_rate": "failed runs / runs today (8%)",
    "breakers": "' ⚡' and the open breakers' services, or nothing",
    "open_breakers": "how many breakers are open",
    "budget": "today's cost as a share of MONITOR_DAILY_BUDGET_USD (61%), or nothing",
    "profile": "the settings profile",
}
_HEALTH_FRESH_SECONDS = 900
_GLYPHS = {1.0: "✓", 0.5: "▲", 0.0: "✗"}
# What is printed instead of the line when the store cannot be read at once.
MARKER = "?"
# A lock held by another process is waited for this long, then MARKER: a prompt
# cannot wait DATABASE_BUSY_TIMEOUT.
LOCK_WAIT_SECONDS = 0.1


# The store's newest migration this version knows (metrics/store.py; a test checks):
# a store with a later one is from a newer version, and not read.
LATEST_STORE_MIGRATION = "m007_run_trace"


# restorejournal.JOURNAL_NAME (a test checks), not imported: the fast path stays light.
RESTORE_JOURNAL = ".restore-journal.json"


class Unreadable(Exception):
    """The store is there but cannot be read now (locked, damaged, not a file)."""


class Today:
    """What the statusline shows (a plain class: dataclasses costs ~6 ms to import)."""

    def __init__(self) -> None:
        self.cost = 0.0
        self.runs = self.errors = self.priced_runs = self.unpriced_runs = 0
        self.health: float | None = None
        self.open_breakers: tuple[str, ...] = ()


def read_today(db_path: str | os.PathLike[str], zone: tzinfo, now: float) -> Today:
    """Today's figures from monitoring.db (all zero when there is none yet).

    Raises :class:`Unreadable` for a store that is there but cannot be read now: not
    a regular file, empty, locked, damaged, from a newer version, or one that needs
    its migrations (a prompt never writes: the next command that records does them).
    """
    today = Today()
    path = os.path.abspath(db_path)
    try:
        # stat, never open: opening a FIFO blocks, and a device never ends.
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise Unreadable(f"{path} is a dangling symbolic link") from None
        return today
    except OSError as error:
        raise Unreadable(f"{path}: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable(f"{path} is not a regular file")
    if info.st_size == 0:
        raise Unreadable(f"{path} is empty (0 bytes)")
    midnight = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start = datetime(midnight.year, midnight.month, midnight.day, tzinfo=zone).timestamp()
    # The characters a SQLite URI path must escape (pathlib's as_uri imports urllib).
    quoted = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        return _read(f"file:{quoted}?mode=ro", path, start, now, today)
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            raise Unreadable(
                f"{path} needs its migrations (or is no metrics store): the next "
                "command that records (ask, monitor health) does them"
            ) from None
        raise Unreadable(f"{path}: {error}") from error
    except sqlite3.Error as error:
        raise Unreadable(f"{path}: {error}") from error


def _read(uri: str, path: str, start: float, now: float, today: Today) -> Today:
    conn = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_SECONDS)
    try:
        (newest,) = conn.execute("SELECT max(name) FROM schema_migrations").fetchone()
        if newest is not None and newest > LATEST_STORE_MIGRATION:
            raise Unreadable(f"{path} was written by a newer version of assistant ({newest})")
        # The usage rollup (rollup.py): local midnight is on a quarter hour.
        row = conn.execute(
            "SELECT total(cost_usd), sum(runs), sum(errors), sum(priced_runs), "
            "sum(unpriced_runs) FROM usage_buckets WHERE bucket >= ?",
            (start // 900 * 900,),
        ).fetchone()
        today.cost, today.runs = float(row[0] or 0.0), int(row[1] or 0)
        today.errors, today.priced_runs = int(row[2] or 0), int(row[3] or 0)
        today.unpriced_runs = int(row[4] or 0)
        health = conn.execute(
            "SELECT min(t.value) FROM totals t JOIN series s ON s.id = t.series_id "
            "WHERE s.family = 'assistant_health_status' AND t.updated >= ?",
            (now - _HEALTH_FRESH_SECONDS,),
        ).fetchone()
        today.health = None if health[0] is None else float(health[0])
        today.open_breakers = tuple(
            name
            for (name,) in conn.execute(
                "SELECT service FROM breakers WHERE state = 'open' ORDER BY service"
            )
        )
    finally:
        conn.close()
    return today


def render(
    today: Today, template: str, *, daily_budget: float | None = None, profile: str = ""
) -> str:
    """``template`` with the fields filled (KeyError for an unknown one)."""
    if today.priced_runs == 0 and today.unpriced_runs > 0:
        cost = "unpriced"
    else:
        cost = f"${today.cost:.2f}" if today.cost >= 1 or today.cost == 0 else f"${today.cost:.4f}"
    glyph = "·" if today.health is None else _GLYPHS.get(today.health, "▲")
    values = {
        "health": glyph,
        "cost": cost,
        "cost_usd": f"{today.cost:.4f}",
        "runs": str(today.runs),
        "errors": str(today.errors),
        "error_rate": f"{100 * today.errors / today.runs:.0f}%" if today.runs else "0%",
        "breakers": f" ⚡{','.join(today.open_breakers)}" if today.open_breakers else "",
        "open_breakers": str(len(today.open_breakers)),
        "budget": f"{100 * today.cost / daily_budget:.0f}%" if daily_budget else "",
        "profile": profile,
    }
    return template.format_map(_Strict(values))


class _Strict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def check_template(template: str) -> str | None:
    """None when ``template`` is usable, else what is wrong with it."""
    import string

    try:
        for _text, name, spec, conversion in string.Formatter().parse(template):
            if name is None:
                continue
            if name not in FIELDS:
                return f"unknown field {{{name}}}: use {', '.join('{' + f + '}' for f in FIELDS)}"
            if spec or conversion:
                return f"{{{name}}}: no format specs or conversions"
    except ValueError as error:
        return f"{error} (write {{{{ and }}}} for braces)"
    return None


def fast_main(argv: Sequence[str]) -> int | None:
    """Run ``[global options] monitor statusline [options]`` without the CLI, or None
    when ``argv`` is anything else or this path is unsure (the full CLI then runs)."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    profile, template, tz = parsed
    try:
        from assistant_monitoring.settings.profiles import RawLayers
        from assistant_monitoring.zones import resolve_zone

        layers = RawLayers(profile)
        data_dir = layers.data_dir()
        db_path = layers.path("MONITORING_DB_PATH", os.path.join(data_dir, "monitoring.db"))
        zone = resolve_zone(tz if tz is not None else layers.get("MONITOR_TIMEZONE"))
        budget_text = layers.get("MONITOR_DAILY_BUDGET_USD")
        budget = float(budget_text) if budget_text else None
        if budget is not None and not budget > 0:
            return None
        if check_template(template) is not None:
            return None
        if os.path.lexists(os.path.join(data_dir, RESTORE_JOURNAL)):
            # A restore was killed mid-swap: the store may be the old one, the
            # backup's or none. A prompt neither reads nor finishes it (the next
            # command does, restorejournal.py): it says "?".
            raise Unreadable("a restore was interrupted: the next command finishes it")
        line = render(
            read_today(db_path, zone, time.time()),
            template,
            daily_budget=budget,
            profile=layers.profile,
        )
    except Unreadable:
        line = MARKER
    except Exception:  # any doubt: the full CLI says what is wrong, in one line
        return None
    sys.stdout.write(line + "\n")
    return 0


# --debug is not here: the full CLI then runs, and says why a "?" was printed.
_GLOBAL_FLAGS = ("--no-color",)


def _parse(argv: Sequence[str]) -> tuple[str | None, str, str | None] | None:
    """(profile, template, tz) for a statusline command line this path can run."""
    args = list(argv)
    profile: str | None = None
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in _GLOBAL_FLAGS:
            continue
        if option in ("--profile", "-e") and args:
            profile = args.pop(0)
        elif option.startswith("--profile="):
            profile = option.split("=", 1)[1]
        else:
            return None
    if args[:2] != ["monitor", "statusline"]:
        return None
    rest = args[2:]
    template, tz = DEFAULT_FORMAT, None
    while rest:
        option = rest.pop(0)
        name, has_value, value = option.partition("=")
        if name not in ("--format", "-f", "--tz"):
            return None
        if not has_value:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--tz":
            tz = value
        else:
            template = value
    return profile, template, tz
