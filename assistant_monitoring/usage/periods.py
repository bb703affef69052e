"""The window and the periods of a usage report, in the report's time zone.

``--since``/``--until`` take a duration (``7d``: that long before now), a date
(``2026-11-01``: its local midnight; as ``--until``, the end of that day), an ISO time
(naive means the report's zone), or a named period: ``today``, ``yesterday``,
``this-week``, ``last-week``, ``this-month``, ``last-month``. A named period means its
start as ``--since`` and its end as ``--until``, so ``--since yesterday --until
yesterday`` is exactly yesterday. Weeks start on Monday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from assistant_monitoring.errors import UsageError, shown
from assistant_monitoring.timeparse import duration_or_none
from assistant_monitoring.zones import local_midnight

PERIOD_GROUPS = ("hourly", "daily", "weekly", "monthly")
KEY_GROUPS = ("session", "model", "conversation", "repo")
GROUPS = ("daily", "weekly", "monthly", "hourly", "session", "model", "conversation", "repo")
NAMED = ("today", "yesterday", "this-week", "last-week", "this-month", "last-month")
# How far back a report looks when --since is not given.
DEFAULT_SPAN = {
    "hourly": "today",
    "daily": 30,  # days, today included
    "weekly": 12 * 7,
    "monthly": 366,
}
_DEFAULT_DAYS = 30
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in epoch seconds."""

    start: float
    end: float


def day_start(zone: tzinfo, day: date) -> float:
    """Epoch seconds of ``day``'s local midnight in ``zone``."""
    return local_midnight(zone, datetime(day.year, day.month, day.day))


def local_date(zone: tzinfo, when: float) -> date:
    """The date it is in ``zone`` at ``when``."""
    return datetime.fromtimestamp(when, zone).date()


def month_start(day: date) -> date:
    """The first of ``day``'s month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first of the month after ``day``'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def named_window(name: str, zone: tzinfo, now: float) -> Window:
    """The window a period name means, in ``zone``, at ``now``."""
    today = local_date(zone, now)
    if name == "today":
        first, after = today, today + timedelta(days=1)
    elif name == "yesterday":
        first, after = today - timedelta(days=1), today
    elif name == "this-week":
        first = week_start(today)
        after = first + timedelta(days=7)
    elif name == "last-week":
        after = week_start(today)
        first = after - timedelta(days=7)
    elif name == "this-month":
        first, after = month_start(today), next_month(today)
    elif name == "last-month":
        after = month_start(today)
        first = month_start(after - timedelta(days=1))
    else:  # pragma: no cover - callers check NAMED
        raise ValueError(name)
    return Window(day_start(zone, first), day_start(zone, after))


def parse_bound(text: str, *, zone: tzinfo, now: float, option: str, is_end: bool) -> float:
    """One ``--since`` (``is_end=False``) or ``--until`` value, as epoch seconds."""
    value = text.strip().lower()
    if value in NAMED:
        window = named_window(value, zone, now)
        return window.end if is_end else window.start
    if len(value) > 100 or not value.isascii() or not value.isprintable():
        raise UsageError(
            f"{option}: expected a date, a duration or a period name (got '{shown(text)}')"
        )
    delta = duration_or_none(value, option)
    if delta is not None:
        return now - delta.total_seconds()
    if _DATE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            day = None
        if day is not None:
            return day_start(zone, day + timedelta(days=1) if is_end else day)
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: expected {', '.join(NAMED)}, a date (2026-11-01), a duration (7d) "
            f"or an ISO time (got '{shown(text)}')"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        raise UsageError(f"{option}: out of range (got '{shown(text)}')") from None


def report_window(
    group: str,
    *,
    since: str | None,
    until: str | None,
    zone: tzinfo,
    now: float,
    options: tuple[str, str] = ("--since", "--until"),
) -> Window:
    """The window of a ``group`` report: the options, else the group's default span.

    ``options`` names the two inputs in error messages.
    """
    since_name, until_name = options
    end = (
        parse_bound(until, zone=zone, now=now, option=until_name, is_end=True)
        if until is not None
        else now
    )
    if since is not None:
        start = parse_bound(since, zone=zone, now=now, option=since_name, is_end=False)
    else:
        span = DEFAULT_SPAN.get(group, _DEFAULT_DAYS)
        last_day = local_date(zone, end - 1e-6) if end > 0 else local_date(zone, now)
        if span == "today":
            start = day_start(zone, last_day)
        else:
            assert isinstance(span, int)
            first = last_day - timedelta(days=span - 1)
            if group == "weekly":
                first = week_start(first)
            elif group == "monthly":
                first = month_start(first)
            start = day_start(zone, first)
    if start >= end:
        # Name what the user gave: an --until before the default start is the fault.
        culprit = since_name if since is not None else until_name
        raise UsageError(
            f"{culprit}: the window is empty: it must start before it ends "
            f"({datetime.fromtimestamp(start, zone):%Y-%m-%d %H:%M} is not before "
            f"{datetime.fromtimestamp(end, zone):%Y-%m-%d %H:%M})"
        )
    return Window(start, end)
