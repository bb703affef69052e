"""The JSON API's answers, independent of the HTTP server that sends them.

Each endpoint is a function of the settings and the query parameters that returns a
JSON-ready document, or raises :class:`~assistant_monitoring.errors.UsageError`
naming the parameter at fault (the server answers 400 with it). Parameters are
checked strictly: an unknown one is an error too (``?stauts=failed`` would
otherwise silently list every run), and so is every malformed value.

Kept apart from the server so the checks are tested (property-based) without HTTP,
and so any server (the standard library's today) serves the same answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from assistant_monitoring.alerts import AlertBook
from assistant_monitoring.breaker import BreakerStateStore
from assistant_monitoring.errors import UsageError, shown
from assistant_monitoring.metrics.query import minute_quantiles, minute_series
from assistant_monitoring.metrics.report import GROUPS
from assistant_monitoring.metrics.service import metrics_report
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.runs import RunStore, parse_status
from assistant_monitoring.settings import Settings
from assistant_monitoring.sqlitefile import present
from assistant_monitoring.timeparse import parse_duration, parse_since
from assistant_monitoring.usage.service import usage_report

Query = Mapping[str, str]
Endpoint = Callable[[Settings, Query], dict[str, Any]]

_MAX_RUNS = 1000
_MINUTE_ROWS_SECONDS = 48 * 3600  # minute rows are kept 48 hours
_GROUPS_PARAMETER = "group"


def _allow(query: Query, *names: str) -> None:
    unknown = sorted(set(query) - set(names))
    if unknown:
        known = ", ".join(names) or "none"
        raise UsageError(f"{shown(unknown[0])}: unknown parameter (this endpoint takes: {known})")


def _int(query: Query, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 9:
        raise UsageError(
            f"{name}: expected a whole number from {low} to {high} (got '{shown(text)}')"
        )
    value = int(stripped)
    if not low <= value <= high:
        raise UsageError(f"{name}: expected {low} to {high} (got {value})")
    return value


def metrics(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/metrics?period=1h`` (or ``since``/``until``; ``group``, ``name``)."""

    _allow(query, "period", "since", "until", _GROUPS_PARAMETER, "name")
    groups: tuple[str, ...] = GROUPS
    if _GROUPS_PARAMETER in query:
        groups = tuple(g.strip().lower() for g in query[_GROUPS_PARAMETER].split(","))
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            expected = ", ".join(GROUPS)
            raise UsageError(
                f"group: expected some of {expected}, comma-separated (got '{shown(unknown[0])}')"
            )
    return metrics_report(
        settings,
        period=query.get("period", "1h"),
        since=query.get("since"),
        until=query.get("until"),
        groups=groups,
        name=query.get("name"),
        options={"period": "period", "since": "since", "until": "until"},
    )


def runs(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/runs?status=failed&limit=5&since=1h&conversation=c_...``."""

    _allow(query, "status", "limit", "since", "conversation")
    status = parse_status(query.get("status"), option="status")
    limit = _int(query, "limit", 20, 1, _MAX_RUNS)
    since = query.get("since")
    since_at = parse_since(since, option="since").timestamp() if since is not None else None
    store = RunStore.reading(settings)
    if store is None:
        return {"runs": []}
    try:
        found = store.query(
            status=status, limit=limit, since=since_at, conversation=query.get("conversation")
        )
    finally:
        store.close()
    return {"runs": [run.as_json() for run in found]}


def breakers(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/breakers``: every breaker's state."""

    _allow(query)
    path = settings.monitoring_db_path
    if not present(path):
        return {"breakers": []}
    store = BreakerStateStore(path, read_only_ok=True)
    try:
        return {"breakers": [asdict(state) for state in store.load_all()]}
    finally:
        store.close()


def timeseries(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/timeseries?period=1h``: runs, failures and pipeline p50/p95 per minute
    (at most 48 hours)."""

    _allow(query, "period")
    seconds = parse_duration(query.get("period", "1h"), option="period").total_seconds()
    if seconds <= 0:
        raise UsageError(f"period: must be longer than 0 (got '{shown(query['period'])}')")
    end = time.time()
    start = end - min(seconds, _MINUTE_ROWS_SECONDS)
    path = settings.monitoring_db_path
    if not present(path):
        return {"points": []}
    store = MetricsStore(path, read_only_ok=True)
    try:
        conn = store.connect()
        family = "assistant_pipeline_runs_total"
        counts = minute_series(conn, family, start, end)
        failures = dict(minute_series(conn, family, start, end, status="failure"))
        latency = minute_quantiles(
            conn, "assistant_pipeline_duration_seconds", start, end, (0.5, 0.95)
        )
    finally:
        store.close()
    return {
        "points": [
            {
                "minute": minute,
                "runs": value,
                "failures": failures.get(minute, 0.0),
                "p50_seconds": latency.get(minute, (None, None))[0],
                "p95_seconds": latency.get(minute, (None, None))[1],
            }
            for minute, value in counts
        ]
    }


def usage(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/usage?group=hourly&since=24h&tz=Europe/Paris``: what ``monitor usage
    --json`` prints (``model``, ``provider``, ``until``, ``limit`` and ``breakdown``
    too)."""

    _allow(query, "group", "since", "until", "tz", "model", "provider", "limit", "breakdown")
    breakdown = query.get("breakdown", "false").strip().lower()
    if breakdown not in ("true", "false", "1", "0"):
        raise UsageError(f"breakdown: expected true or false (got '{shown(query['breakdown'])}')")
    answer = usage_report(
        settings,
        query.get("group", "daily").strip().lower(),
        since=query.get("since"),
        until=query.get("until"),
        tz=query.get("tz"),
        model=query.get("model"),
        provider=query.get("provider"),
        limit=_int(query, "limit", 0, 0, 100_000) if "limit" in query else None,
        options={name: name for name in ("group", "since", "until", "tz", "provider", "limit")},
    )
    return answer.as_json(breakdown=breakdown in ("true", "1"))


def alerts(settings: Settings, query: Query) -> dict[str, Any]:
    """``/api/alerts``: alerts firing, and the 20 most recent."""

    _allow(query)
    path = settings.monitoring_db_path
    if not present(path):
        return {"firing": [], "recent": []}
    store = MetricsStore(path, read_only_ok=True)
    try:
        book = AlertBook(store)
        return {
            "firing": [a.as_json() for a in book.open_alerts()],
            "recent": [a.as_json() for a in book.recent(20)],
        }
    finally:
        store.close()


ENDPOINTS: dict[str, Endpoint] = {
    "/api/metrics": metrics,
    "/api/runs": runs,
    "/api/breakers": breakers,
    "/api/timeseries": timeseries,
    "/api/usage": usage,
    "/api/alerts": alerts,
}
