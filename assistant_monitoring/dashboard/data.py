"""What one dashboard frame shows, read from the store, the run log and the error log.

Everything here is read-only and comes from files every assistant process writes,
so the dashboard shows every process's activity as it lands. Health is the one live
probe (it calls the LLM API), so it is cached between frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from assistant_monitoring.breaker.state import BreakerState
from assistant_monitoring.health.model import HealthReport
from assistant_monitoring.runs import RunRecord
from assistant_monitoring.settings import Settings


@dataclass
class Snapshot:
    """One frame's data."""

    taken_at: float
    period: str
    report: dict[str, Any]
    runs_per_minute: list[float]
    failures_per_minute: list[float]
    health: HealthReport | None
    breakers: list[BreakerState] = field(default_factory=list)
    failed_runs: list[RunRecord] = field(default_factory=list)
    error_lines: list[dict[str, Any]] = field(default_factory=list)
    cost_today: float | None = None
    alerts: list[Any] = field(default_factory=list)


class HealthProbe:
    """Run the health checks at most every ``seconds``."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        self.settings = settings
        self.seconds = seconds
        self._report: HealthReport | None = None
        self._at = 0.0

    def get(self) -> HealthReport:
        """The latest report, refreshed when older than ``seconds``."""
        from assistant_monitoring.health.service import run_health

        if self._report is None or time.monotonic() - self._at >= self.seconds:
            self._report = run_health(self.settings, total_timeout=3.0)
            self._at = time.monotonic()
        return self._report


def take_snapshot(
    settings: Settings, *, period: str, health: HealthProbe | None, now: float | None = None
) -> Snapshot:
    """Gather a frame: metrics of the period, per-minute activity, health, failures, errors."""
    from assistant_monitoring.metrics.service import metrics_report
    from assistant_monitoring.timeparse import parse_duration

    current = time.time() if now is None else now
    report = metrics_report(settings, period=period, now=current)
    seconds = parse_duration(period, option="--period").total_seconds()
    snapshot = Snapshot(
        taken_at=current,
        period=period,
        report=report,
        runs_per_minute=[],
        failures_per_minute=[],
        health=health.get() if health is not None else None,
    )
    path = settings.monitoring_db_path
    if path.exists():
        _read_store(snapshot, settings, current - seconds, current)
    snapshot.error_lines = _error_lines(settings)
    return snapshot


def _read_store(snapshot: Snapshot, settings: Settings, start: float, end: float) -> None:
    from assistant_monitoring.breaker.store import BreakerStateStore
    from assistant_monitoring.metrics.query import minute_series
    from assistant_monitoring.metrics.store import MetricsStore
    from assistant_monitoring.runs import RunStore
    from assistant_monitoring.usage.budget import period_spend
    from assistant_monitoring.usage.periods import named_window
    from assistant_monitoring.zones import resolve_zone

    store = MetricsStore(settings.monitoring_db_path, read_only_ok=True)
    try:
        conn = store.connect()
        family = "assistant_pipeline_runs_total"
        window_start = max(start, end - 48 * 3600)  # minute rows are kept 48 hours
        snapshot.runs_per_minute = [v for _, v in minute_series(conn, family, window_start, end)]
        snapshot.failures_per_minute = [
            v for _, v in minute_series(conn, family, window_start, end, status="failure")
        ]
        # Today as `monitor usage` and the budget alerts count it: the runs' cost
        # since local midnight in MONITOR_TIMEZONE.
        zone = resolve_zone(settings.monitoring.timezone, option="MONITOR_TIMEZONE")
        spent, runs_today, _unpriced = period_spend(conn, named_window("today", zone, end), end)
        snapshot.cost_today = spent if runs_today else None
    finally:
        store.close()
    breakers = BreakerStateStore(settings.monitoring_db_path, read_only_ok=True)
    try:
        snapshot.breakers = breakers.load_all()
    finally:
        breakers.close()
    runs = RunStore(settings.monitoring_db_path, read_only_ok=True)
    try:
        snapshot.failed_runs = runs.query(status="failure", limit=5, since=start)
    finally:
        runs.close()
    from assistant_monitoring.alerts import AlertBook

    alerts_store = MetricsStore(settings.monitoring_db_path, read_only_ok=True)
    try:
        snapshot.alerts = AlertBook(alerts_store).open_alerts()
    finally:
        alerts_store.close()


def _error_lines(settings: Settings) -> list[dict[str, Any]]:
    from assistant_monitoring.logs.names import ERROR_FILE_NAME
    from assistant_monitoring.logs.reader import LogQuery, read_logs

    path = settings.log_dir / ERROR_FILE_NAME
    if not path.exists():
        return []
    return [entry.data for entry in read_logs(path, LogQuery(lines=5, min_level="ERROR")).entries]
