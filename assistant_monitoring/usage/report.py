"""Usage reports: runs, tokens by type, cost, cache savings, errors, per period or key.

One SQL ``GROUP BY`` does the work: by local day (or hour) in the report's zone, or
by session, conversation, repository or model, and always by provider and model
underneath, so that cache savings can be priced per model and ``--breakdown`` costs
nothing extra. Periods, models and repositories are summed from the usage rollup
(:mod:`assistant_monitoring.rollup`, 15-minute buckets: a window that does
not start on a quarter hour starts at the one before, and the report says so);
sessions and conversations from the runs table. The local day of a bucket is its
start plus the zone's offset then, a ``CASE`` over the (rare) offset changes in the
window; weeks and months are rolled up from days in Python (a few hundred rows).

Costs are what each run recorded when it was priced (``--reprice`` redoes them with
today's table); savings are priced with today's table. A run of an unpriced model is
counted in ``unpriced_runs`` and its cost is never taken as $0: a group with no
priced run has ``cost_usd: null``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.rollup import BILLED_TOKENS, bucket_of
from assistant_monitoring.usage.periods import (
    PERIOD_GROUPS,
    Window,
    day_start,
    month_start,
    next_month,
    week_start,
)
from assistant_monitoring.zones import Segment, offset_segments, zone_name

_EPOCH = date(1970, 1, 1)
# The aggregate columns in Totals' field order: over the runs, and over the rollup.
_RUN_AGGREGATES = f"""count(*), sum(status = 'failure'), sum(status = 'interrupted'),
    sum(input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(cache_write_1h_tokens), total(cost_usd),
    sum(cost_usd IS NOT NULL), sum(cost_usd IS NULL AND {BILLED_TOKENS} > 0),
    min(started_at), max(started_at)"""
_BUCKET_AGGREGATES = """sum(runs), sum(errors), sum(interrupted), sum(input_tokens),
    sum(output_tokens), sum(reasoning_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cache_write_1h_tokens), total(cost_usd), sum(priced_runs), sum(unpriced_runs),
    min(first), max(last)"""
_FINISHED = "status IN ('success', 'failure', 'interrupted')"  # not running or abandoned
_KEY_COLUMNS = {
    "session": "session_id",
    "conversation": "conversation_id",
    "repo": "repo",
    "model": "provider || '/' || model",
}
_FROM_RUNS = ("session", "conversation")  # unbounded keys: not in the rollup
# Session and conversation reports can have thousands of rows: the costliest first.
DEFAULT_LIMITS = {"session": 50, "conversation": 50}


@dataclass
class Totals:
    """What a group of runs used and cost."""

    runs: int = 0
    errors: int = 0
    interrupted: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # of output_tokens
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    priced_cost_usd: float = 0.0  # the priced runs' cost
    priced_runs: int = 0
    unpriced_runs: int = 0  # runs with tokens and no price
    cache_savings_usd: float = 0.0
    first: float | None = None
    last: float | None = None

    @property
    def cost_usd(self) -> float | None:
        """The cost, or None when nothing in the group could be priced."""
        if self.priced_runs == 0 and self.unpriced_runs > 0:
            return None
        return self.priced_cost_usd

    @property
    def tokens(self) -> int:
        """Every billed token (reasoning is part of output)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )

    def add(self, other: Totals) -> None:
        """Add ``other``'s figures to these."""
        for item in fields(self):
            name = item.name
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "first":
                setattr(self, name, theirs if mine is None else min(mine, theirs or mine))
            elif name == "last":
                setattr(self, name, theirs if mine is None else max(mine, theirs or mine))
            else:
                setattr(self, name, mine + theirs)

    def as_json(self, zone: tzinfo) -> dict[str, Any]:
        """The JSON fields (``monitor usage --json``), times in ``zone``."""
        return {
            "runs": self.runs,
            "errors": self.errors,
            "interrupted": self.interrupted,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "total_tokens": self.tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 10),
            "unpriced_runs": self.unpriced_runs,
            "cache_savings_usd": round(self.cache_savings_usd, 10),
            "first_run": _iso(self.first, zone),
            "last_run": _iso(self.last, zone),
        }


@dataclass
class ModelUsage:
    """One provider/model inside a row."""

    provider: str
    model: str
    totals: Totals


@dataclass
class UsageRow:
    """One period (or session, conversation, repository, model) of the report."""

    key: str
    label: str
    start: float | None = None  # periods only: [start, end) in epoch seconds
    end: float | None = None
    totals: Totals = field(default_factory=Totals)
    models: dict[tuple[str, str], ModelUsage] = field(default_factory=dict)

    def as_json(self, *, breakdown: bool, zone: tzinfo) -> dict[str, Any]:
        """The row as ``--json`` prints it."""
        document: dict[str, Any] = {"key": self.label}
        if self.start is not None:
            document["start"] = _iso(self.start, zone)
            document["end"] = _iso(self.end, zone)
        document.update(self.totals.as_json(zone))
        if breakdown:
            document["models"] = [
                {"provider": m.provider, "model": m.model, **m.totals.as_json(zone)}
                for m in sorted(self.models.values(), key=lambda m: (m.provider, m.model))
            ]
        return document


@dataclass
class UsageReport:
    """A whole report: its rows, their totals, and what was asked."""

    group: str
    zone: tzinfo
    window: Window
    rows: list[UsageRow]
    totals: Totals
    hidden_rows: int = 0  # past --limit
    filters: dict[str, str] = field(default_factory=dict)

    def as_json(self, *, breakdown: bool) -> dict[str, Any]:
        """The ``--json`` document (a stable interface: see the README)."""
        return {
            "group": self.group,
            "tz": zone_name(self.zone),
            "since": _iso(self.window.start, self.zone),
            "until": _iso(self.window.end, self.zone),
            "filters": self.filters,
            "rows": [row.as_json(breakdown=breakdown, zone=self.zone) for row in self.rows],
            "hidden_rows": self.hidden_rows,
            "totals": self.totals.as_json(self.zone),
        }


def local_offset_sql(
    segments: list[Segment], *, column: str = "started_at"
) -> tuple[str, list[float]]:
    """SQL for the zone's UTC offset at ``column``'s time, with its parameters."""
    if len(segments) == 1:
        return str(segments[0].offset), []
    branches = " ".join(f"WHEN {column} < ? THEN {s.offset}" for s in segments[:-1])
    return f"(CASE {branches} ELSE {segments[-1].offset} END)", [s.end for s in segments[:-1]]


def query_usage(
    conn: sqlite3.Connection,
    group: str,
    window: Window,
    zone: tzinfo,
    *,
    prices: PriceTable | None = None,
    model: str | None = None,
    provider: str | None = None,
    limit: int | None = None,
) -> UsageReport:
    """The ``group`` report of the runs in ``window`` (see the module docstring)."""
    table = prices or PriceTable()
    sql, params, window, filters = _usage_sql(group, window, zone, model, provider)
    rows: dict[Any, UsageRow] = {}
    grand = Totals()
    for found, extra_value, row_provider, row_model, *aggregates in conn.execute(sql, params):
        totals = _totals(aggregates)
        price = table.price(row_model) if row_model else None
        if price is not None:
            totals.cache_savings_usd = price.cache_savings(
                cache_read=totals.cache_read_tokens,
                cache_write=totals.cache_write_5m_tokens,
                cache_write_1h=totals.cache_write_1h_tokens,
            )
        row_key = _row_key(group, found, extra_value)
        row = rows.get(row_key)
        if row is None:
            row = rows[row_key] = _new_row(group, row_key, zone)
        row.totals.add(totals)
        both = (row_provider, row_model)
        if both in row.models:
            row.models[both].totals.add(totals)
        else:
            row.models[both] = ModelUsage(row_provider, row_model, totals)
        grand.add(totals)
    ordered = _ordered(group, rows.values())
    limit = DEFAULT_LIMITS.get(group) if limit is None else (limit or None)
    hidden = max(0, len(ordered) - limit) if limit else 0
    return UsageReport(
        group,
        zone,
        window,  # as read: for the rollup, from the quarter hour holding the start
        ordered[:limit] if limit else ordered,
        grand,
        hidden_rows=hidden,
        filters=filters,
    )


def _usage_sql(
    group: str, window: Window, zone: tzinfo, model: str | None, provider: str | None
) -> tuple[str, list[Any], Window, dict[str, str]]:
    """The report's query, its parameters, the window it reads, and the filters."""
    params: list[Any] = []
    if group in _FROM_RUNS:
        source, time_column, aggregates = "pipeline_runs", "started_at", _RUN_AGGREGATES
        start = window.start
    else:
        source, time_column, aggregates = "usage_buckets", "bucket", _BUCKET_AGGREGATES
        start = float(bucket_of(window.start))
        window = Window(start, window.end)
    if group in PERIOD_GROUPS:
        segments = offset_segments(zone, window.start, window.end)
        offset, offset_params = local_offset_sql(segments, column=time_column)
        unit = 3600 if group == "hourly" else 86400
        key = f"CAST(({time_column} + {offset}) / {unit} AS INTEGER)"
        # Hourly keeps the offset too: the repeated hour of a DST change is two hours.
        extra = offset if group == "hourly" else "0"
        params += offset_params * (2 if group == "hourly" else 1)
    else:
        key, extra = _KEY_COLUMNS[group], "0"
    where = [f"{time_column} >= ?", f"{time_column} < ?"]
    params += [start, window.end]
    if group in _FROM_RUNS:
        where.append(_FINISHED)
    filters: dict[str, str] = {}
    if provider:
        where.append("provider = ?")
        params.append(provider.lower())
        filters["provider"] = provider.lower()
    if model:
        where.append("instr(lower(model), ?) > 0")
        params.append(model.lower())
        filters["model"] = model
    sql = (
        f"SELECT {key}, {extra}, coalesce(provider, ''), coalesce(model, ''), {aggregates} "
        f"FROM {source} WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4"
    )
    return sql, params, window, filters


def _totals(values: list[Any]) -> Totals:
    names = [item.name for item in fields(Totals) if item.name != "cache_savings_usd"]
    return Totals(**{name: (value or 0) if name not in ("first", "last") else value
                     for name, value in zip(names, values, strict=True)})  # fmt: skip


def _row_key(group: str, found: Any, extra: Any) -> Any:
    if group == "hourly":
        return (int(found), int(extra))
    if group in PERIOD_GROUPS:
        day = _EPOCH + timedelta(days=int(found))
        if group == "weekly":
            return week_start(day)
        if group == "monthly":
            return month_start(day)
        return day
    return found


def _new_row(group: str, key: Any, zone: tzinfo) -> UsageRow:
    if group == "hourly":
        hour, offset = key
        start = hour * 3600 - offset
        local = datetime.fromtimestamp(start, zone)
        return UsageRow(str(start), local.strftime("%Y-%m-%d %H:00 %z"), start, start + 3600)
    if isinstance(key, date):
        after = {
            "daily": key + timedelta(days=1),
            "weekly": key + timedelta(days=7),
            "monthly": next_month(key),
        }[group]
        label = key.strftime("%Y-%m") if group == "monthly" else key.isoformat()
        return UsageRow(label, label, day_start(zone, key), day_start(zone, after))
    label = "(none)" if key is None or key == "" else str(key)
    return UsageRow(label, label)


def _ordered(group: str, rows: Iterable[UsageRow]) -> list[UsageRow]:
    if group in PERIOD_GROUPS:
        return sorted(rows, key=lambda row: row.start or 0.0)
    return sorted(
        rows, key=lambda row: (-(row.totals.cost_usd or 0.0), -row.totals.runs, row.label)
    )


def _iso(when: float | None, zone: tzinfo) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, zone).isoformat("T", "seconds")
