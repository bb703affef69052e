"""Budgets: spent so far this day or month, what is left, and where the rate leads.

The same figures feed ``monitor usage``, the statusline and the alert rules, so a
budget alert always agrees with the report. Spend is the recorded cost of the runs
(the runs table, after any ``--reprice``) since the period's local start in the
report's zone. The projection is linear: the spend so far, divided by the time
elapsed, times the period's length (a day is 23 or 25 hours across a DST change).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from assistant_monitoring.rollup import bucket_of
from assistant_monitoring.usage.periods import Window, named_window

PERIODS = {"day": "today", "month": "this-month"}
SETTINGS = {"day": "MONITOR_DAILY_BUDGET_USD", "month": "MONITOR_MONTHLY_BUDGET_USD"}
# Before this share of the period has gone, a projection is noise (one run at 00:05
# "projects" a day of them): the alert rule waits for it, the report says "early".
PROJECTION_MIN_ELAPSED = 0.125


@dataclass(frozen=True)
class BudgetStatus:
    """One budget now."""

    period: str  # "day" or "month"
    budget_usd: float
    spent_usd: float
    unpriced_runs: int
    window: Window
    now: float

    @property
    def remaining_usd(self) -> float:
        """What is left (negative once over)."""
        return self.budget_usd - self.spent_usd

    @property
    def elapsed(self) -> float:
        """The share of the period gone, 0 to 1."""
        length = self.window.end - self.window.start
        return min(1.0, max(0.0, (self.now - self.window.start) / length)) if length else 1.0

    @property
    def projected_usd(self) -> float:
        """The spend at the period's end if the rate so far holds."""
        return self.spent_usd / self.elapsed if self.elapsed else self.spent_usd

    @property
    def runs_out_at(self) -> float | None:
        """When the budget runs out at this rate, if within the period (now if over)."""
        if self.spent_usd >= self.budget_usd:
            return self.now
        gone = self.now - self.window.start
        if self.spent_usd <= 0 or gone <= 0:
            return None
        when = self.window.start + self.budget_usd * gone / self.spent_usd
        return when if when < self.window.end else None

    @property
    def projection_reliable(self) -> bool:
        """Whether enough of the period has gone for the projection to mean much."""
        return self.elapsed >= PROJECTION_MIN_ELAPSED

    def as_json(self, zone: tzinfo) -> dict[str, Any]:
        """The budget as ``--json`` prints it."""
        out = self.runs_out_at
        return {
            "period": self.period,
            "setting": SETTINGS[self.period],
            "budget_usd": self.budget_usd,
            "spent_usd": round(self.spent_usd, 10),
            "remaining_usd": round(self.remaining_usd, 10),
            "percent_used": round(100 * self.spent_usd / self.budget_usd, 2),
            "projected_usd": round(self.projected_usd, 10),
            "projection_reliable": self.projection_reliable,
            "runs_out_at": None
            if out is None
            else datetime.fromtimestamp(out, zone).isoformat("T", "seconds"),
            "unpriced_runs": self.unpriced_runs,
            "period_start": datetime.fromtimestamp(self.window.start, zone).isoformat(),
            "period_end": datetime.fromtimestamp(self.window.end, zone).isoformat(),
        }


def period_spend(conn: sqlite3.Connection, window: Window, now: float) -> tuple[float, int, int]:
    """(cost, runs, unpriced runs) of the runs finished in ``window`` (from the usage
    rollup: local days and months start on its quarter hours)."""
    row = conn.execute(
        "SELECT total(cost_usd), sum(runs), sum(unpriced_runs) FROM usage_buckets "
        "WHERE bucket >= ? AND bucket < ?",
        (bucket_of(window.start), min(window.end, now + 1)),
    ).fetchone()
    return float(row[0] or 0.0), int(row[1] or 0), int(row[2] or 0)


def budget_statuses(
    conn: sqlite3.Connection,
    *,
    daily_usd: float | None,
    monthly_usd: float | None,
    zone: tzinfo,
    now: float,
) -> list[BudgetStatus]:
    """The configured budgets' status now (none configured: an empty list)."""
    statuses = []
    for period, budget in (("day", daily_usd), ("month", monthly_usd)):
        if not budget:
            continue
        window = named_window(PERIODS[period], zone, now)
        spent, _runs, unpriced = period_spend(conn, window, now)
        statuses.append(BudgetStatus(period, budget, spent, unpriced, window, now))
    return statuses
