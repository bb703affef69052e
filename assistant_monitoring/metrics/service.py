"""What the ``monitor metrics`` command (and later the HTTP server) asks of the store."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from assistant_monitoring.errors import UsageError
from assistant_monitoring.metrics.exposition import render_exposition
from assistant_monitoring.metrics.pricing import PriceTable
from assistant_monitoring.metrics.query import WindowData, query_window
from assistant_monitoring.metrics.report import GROUPS, build_report
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.settings import Settings
from assistant_monitoring.timeparse import parse_duration, parse_since


def resolve_window(
    *, period: str, since: str | None, until: str | None, now: float
) -> tuple[float, float, str]:
    """``(start, end, label)`` from --period or --since/--until; UsageError when bad."""
    current = datetime.fromtimestamp(now, UTC)
    end = parse_since(until, now=current, option="--until").timestamp() if until else now
    if since:
        start = parse_since(since, now=current, option="--since").timestamp()
        label = f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} to " + (
            "now" if not until else f"{datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC"
        )
    else:
        start = end - parse_duration(period, option="--period").total_seconds()
        label = f"the last {period}" if not until else f"{period} before {until}"
    if start >= end:
        raise UsageError("--since must be before --until")
    return start, end, label


def read_window(settings: Settings, start: float, end: float, *, now: float) -> WindowData:
    """Aggregates of every series over the window (empty when there is no store yet)."""
    path = settings.monitoring_db_path
    if not path.exists():
        return WindowData(start, end, [])
    store = MetricsStore(path, retention_days=settings.monitoring.retention_days)
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
) -> dict[str, Any]:
    """The ``monitor metrics`` document for a window."""
    current = time.time() if now is None else now
    start, end, label = resolve_window(period=period, since=since, until=until, now=current)
    window = read_window(settings, start, end, now=current)
    prices = PriceTable.with_overrides(settings.monitoring.prices_file)
    report = build_report(window, period=period, prices=prices, groups=groups, name=name)
    report["label"] = label
    return report


def exposition_text(settings: Settings, *, openmetrics: bool = False) -> str:
    """Prometheus (or OpenMetrics) text of the store's all-time totals."""
    path = settings.monitoring_db_path
    if not path.exists():
        return "# EOF\n" if openmetrics else ""
    store = MetricsStore(path, retention_days=settings.monitoring.retention_days)
    try:
        return render_exposition(store.connect(), openmetrics=openmetrics)
    finally:
        store.close()
