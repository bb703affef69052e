"""What ``monitor usage`` and the alert rules call: reports and budgets from settings."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from assistant_monitoring.errors import MonitoringError, UsageError, shown
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.sqlitefile import present
from assistant_monitoring.usage.budget import BudgetStatus, budget_statuses
from assistant_monitoring.usage.periods import GROUPS, report_window
from assistant_monitoring.usage.report import Totals, UsageReport, query_usage
from assistant_monitoring.zones import resolve_zone

_PROVIDERS = ("anthropic", "openai")
# How errors name each input: the CLI's options; the HTTP API passes its parameters.
CLI_OPTIONS = {
    "group": "GROUP",
    "since": "--since",
    "until": "--until",
    "tz": "--tz",
    "provider": "--provider",
    "limit": "--limit",
}


@dataclass
class UsageAnswer:
    """A report and the budgets beside it."""

    report: UsageReport
    budgets: list[BudgetStatus] = field(default_factory=list)
    has_store: bool = True

    def as_json(self, *, breakdown: bool) -> dict[str, Any]:
        """The ``monitor usage --json`` document."""
        zone = self.report.zone
        return {
            **self.report.as_json(breakdown=breakdown),
            "budgets": [budget.as_json(zone) for budget in self.budgets],
        }


def report_zone(settings: Any, tz: str | None, *, option: str = "--tz") -> tzinfo:
    """``--tz`` if given, else MONITOR_TIMEZONE, else the machine's zone."""
    if tz is not None:
        return resolve_zone(tz, option=option)
    return resolve_zone(settings.monitoring.timezone, option="MONITOR_TIMEZONE")


def usage_report(
    settings: Any,
    group: str = "daily",
    *,
    since: str | None = None,
    until: str | None = None,
    tz: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    limit: int | None = None,
    now: float | None = None,
    options: dict[str, str] = CLI_OPTIONS,
) -> UsageAnswer:
    """The ``group`` report over the runs table, with the budgets' status now.

    Errors name the inputs as ``options`` does (the CLI's by default).
    """
    if group not in GROUPS:
        raise UsageError(
            f"{options['group']}: expected one of {', '.join(GROUPS)} (got '{shown(group)}')"
        )
    if provider is not None and provider.lower() not in _PROVIDERS:
        raise UsageError(
            f"{options['provider']}: expected one of {', '.join(_PROVIDERS)} "
            f"(got '{shown(provider)}')"
        )
    if limit is not None and limit < 0:
        raise UsageError(f"{options['limit']}: must be 0 (all) or more (got {limit})")
    current = time.time() if now is None else now
    zone = report_zone(settings, tz, option=options["tz"])
    window = report_window(
        group,
        since=since,
        until=until,
        zone=zone,
        now=current,
        options=(options["since"], options["until"]),
    )
    path = settings.monitoring_db_path
    if not present(path):
        return UsageAnswer(UsageReport(group, zone, window, [], Totals()), [], has_store=False)
    from assistant_monitoring.metrics.store import MetricsStore

    store = MetricsStore(path, read_only_ok=True)
    try:
        conn = store.connect()
        prices = PriceTable.with_overrides(settings.monitoring.prices_file)
        report = query_usage(
            conn,
            group,
            window,
            zone,
            prices=prices,
            model=model,
            provider=provider,
            limit=limit,
        )
        budgets = budget_statuses(
            conn,
            daily_usd=settings.alerts.daily_budget_usd,
            monthly_usd=settings.alerts.monthly_budget_usd,
            zone=zone,
            now=current,
        )
    finally:
        store.close()
    answer = UsageAnswer(report, budgets)
    require_finite(answer.as_json(breakdown=True))
    return answer


NOT_FINITE = (
    "the usage store holds a cost that is not a finite number (an older version "
    "accepted a price such as 1e308): run `assistant monitor usage --reprice` to "
    "recompute the costs of past runs"
)


def require_finite(document: Any) -> None:
    """MonitoringError when a figure in ``document`` is NaN or infinite.

    JSON has no such numbers (``json.dumps`` would write a bare ``NaN``, which
    parsers refuse), and a table, a CSV or a budget built on one is meaningless:
    every format refuses the report in one line, before printing any of it.
    """
    if not _finite(document):
        raise MonitoringError(NOT_FINITE)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True
