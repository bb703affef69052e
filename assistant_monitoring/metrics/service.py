"""What the ``monitor metrics`` command (and later the HTTP server) asks of the store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from assistant_monitoring.errors import UsageError
from assistant_monitoring.metrics.query import WindowData, query_window
from assistant_monitoring.metrics.report import GROUPS, build_report
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.settings import Settings
from assistant_monitoring.sqlitefile import present
from assistant_monitoring.timeparse import parse_duration, parse_since

CLI_OPTIONS = {"period": "--period", "since": "--since", "until": "--until"}


def resolve_window(
    *,
    period: str,
    since: str | None,
    until: str | None,
    now: float,
    options: Mapping[str, str] = CLI_OPTIONS,
) -> tuple[float, float, str]:
    """``(start, end, label)`` of the window that --period or --since/--until describe.

    --until defaults to now; --since, when given, replaces --period. Nothing newer
    than now is stored, so an --until in the future ends the window now (the label
    then says so), while a --since at or after now is refused: that window could only
    be empty, and such a time is almost always a wrong year or time zone.

    Raises :class:`UsageError` naming the option the user gave, as ``options`` spell
    them (``--period`` on the command line, ``period`` over HTTP).
    """

    def minute(moment: datetime) -> str:
        # Not strftime: "%Y" drops the leading zeros of years before 1000 on glibc.
        return moment.isoformat(sep=" ", timespec="minutes")[:16]

    current = datetime.fromtimestamp(now, UTC)
    end, end_at = now, current
    if until:
        until_at = parse_since(until, now=current, option=options["until"])
        if until_at < current:
            end, end_at = until_at.timestamp(), until_at
        else:
            until = None
    if since:
        start_at = parse_since(since, now=current, option=options["since"])
        if start_at >= current:
            raise UsageError(
                f"{options['since']}: must be before now (got '{since.strip()}', "
                f"now is {minute(current)} UTC)"
            )
        if start_at >= end_at:
            raise UsageError(f"{options['since']} must be before {options['until']}")
        label = f"{minute(start_at)} to " + (f"{minute(end_at)} UTC" if until else "now")
        return start_at.timestamp(), end, label
    # Seconds, not datetimes: a window reaching before year 1 is merely empty.
    start = end - parse_duration(period, option=options["period"]).total_seconds()
    label = f"{period.strip()} before {until.strip()}" if until else f"the last {period.strip()}"
    return start, end, label


def read_window(settings: Settings, start: float, end: float, *, now: float) -> WindowData:
    """Aggregates of every series over the window (empty when there is no store yet)."""
    path = settings.monitoring_db_path
    if not present(path):
        return WindowData(start, end, [])
    store = MetricsStore(path, read_only_ok=True)
    try:
        return query_window(store.connect(), start, end, now=now)
    finally:
        store.close()


def metrics_report(
    settings: Settings,
    *,
    period: str = "1h",
    since: str | None = None,
    until: str | None = None,
    groups: tuple[str, ...] = GROUPS,
    name: str | None = None,
    now: float | None = None,
    options: Mapping[str, str] = CLI_OPTIONS,
) -> dict[str, Any]:
    """The ``monitor metrics`` document for a window (``options``: see resolve_window)."""
    current = time.time() if now is None else now
    start, end, label = resolve_window(
        period=period, since=since, until=until, now=current, options=options
    )
    window = read_window(settings, start, end, now=current)
    prices = PriceTable.with_overrides(settings.monitoring.prices_file)
    report = build_report(window, period=period, prices=prices, groups=groups, name=name)
    report["label"] = label
    return report


def exposition_bytes(settings: Settings, *, openmetrics: bool = False) -> bytes:
    """Prometheus (or OpenMetrics) exposition of the store's all-time totals."""
    from assistant_monitoring.metrics.exposition import encode

    path = settings.monitoring_db_path
    if not present(path):
        return b"# EOF\n" if openmetrics else b""
    store = MetricsStore(path, read_only_ok=True)
    try:
        return encode(store.connect(), openmetrics=openmetrics)
    finally:
        store.close()


def exposition_text(settings: Settings, *, openmetrics: bool = False) -> str:
    """:func:`exposition_bytes` as text."""
    return exposition_bytes(settings, openmetrics=openmetrics).decode()
