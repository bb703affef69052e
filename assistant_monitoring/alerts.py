"""Local alerting, for users without Prometheus and Alertmanager.

The rules (thresholds from settings, over the last ``ALERT_WINDOW`` of the store):

========================  ========  ================================================
rule                      severity  fires when
========================  ========  ================================================
pipeline_failure_ratio    critical  failed runs / runs >= ALERT_PIPELINE_FAILURE_RATIO
slow_pipeline             warning   pipeline p95 > ALERT_PIPELINE_P95_SECONDS
stage_failures            warning   a stage failed >= ALERT_STAGE_FAILURES times
llm_error_ratio           critical  failed LLM requests / requests >= ALERT_LLM_ERROR_RATIO
breaker_open              critical  a circuit breaker is open
memory_high               warning   the memory health check is unhealthy
daily_cost_50/80/95       info ...  today's cost >= 50/80/95% of MONITOR_DAILY_BUDGET_USD
                          critical  (info at 50%, warning at 80%, critical at 95%)
monthly_cost_50/80/95     info ...  this month's cost against MONITOR_MONTHLY_BUDGET_USD
                          critical  (the same steps)
daily_cost_projected,     warning   the spend projected to the end of the day (month)
monthly_cost_projected              at the current rate is over the budget, once an
                                    eighth of the period has gone
========================  ========  ================================================

Budget figures are those of ``monitor usage`` (:mod:`assistant_monitoring.usage.budget`):
the runs' recorded cost since the local midnight (or first of the month) in
MONITOR_TIMEZONE, so an alert and the report always agree.

Ratio rules wait for ``ALERT_MINIMUM_RUNS`` so one failure out of one is not an
outage. Each evaluation compares with the alerts already open in ``monitoring.db``:
a new firing alert is recorded and announced once (webhook, listeners); one that is
still firing is only updated, never re-sent; one that stopped firing is resolved and
announced as resolved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from assistant_monitoring.metrics.query import WindowData
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.settings import Settings
from assistant_monitoring.usage.budget import BudgetStatus

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """A rule that fires now."""

    rule: str
    severity: str
    value: float
    message: str


@dataclass
class Alert:
    """A recorded alert (firing, or resolved with its end time)."""

    id: int
    rule: str
    severity: str
    state: str
    started_at: float
    resolved_at: float | None
    value: float | None
    message: str

    def as_json(self) -> dict[str, Any]:
        """The alert as sent to webhooks and APIs."""
        return asdict(self)


def evaluate_rules(
    settings: Settings,
    window: WindowData,
    *,
    open_breakers: list[str],
    budgets: list[BudgetStatus],
    memory_unhealthy: str | None,
) -> list[Finding]:
    """The rules that fire on this data (pure: no I/O)."""
    rules = settings.alerts
    findings: list[Finding] = []
    runs = window.total("assistant_pipeline_runs_total")
    failed = window.total("assistant_pipeline_runs_total", status="failure")
    if runs >= rules.minimum_runs and failed / runs >= rules.pipeline_failure_ratio:
        findings.append(
            Finding(
                "pipeline_failure_ratio",
                "critical",
                failed / runs,
                f"{failed:.0f} of {runs:.0f} pipeline runs failed in the last {rules.window} "
                f"(>= {rules.pipeline_failure_ratio:.0%}): "
                "see `assistant monitor runs --status failed`",
            )
        )
    duration = window.combined("assistant_pipeline_duration_seconds")
    p95 = duration.quantile(0.95) if duration is not None else None
    enough = duration is not None and duration.count >= rules.minimum_runs
    if p95 is not None and enough and p95 > rules.pipeline_p95_seconds:
        findings.append(
            Finding(
                "slow_pipeline",
                "warning",
                p95,
                f"pipeline p95 is {p95:.2f}s over the last {rules.window} "
                f"(> {rules.pipeline_p95_seconds:g}s): check the generate stage and the provider",
            )
        )
    for series in window.family("assistant_stage_runs_total"):
        if series.label("status") == "failure" and series.value >= rules.stage_failures:
            stage = series.label("stage")
            findings.append(
                Finding(
                    f"stage_failures:{stage}",
                    "warning",
                    series.value,
                    f"stage {stage} failed {series.value:.0f} times in the last {rules.window}",
                )
            )
    requests = window.total("assistant_llm_requests_total")
    # An interrupted request (SIGTERM, Ctrl-C) is no sign of a failing provider.
    not_failed = window.total("assistant_llm_requests_total", status="success") + window.total(
        "assistant_llm_requests_total", status="interrupted"
    )
    if (
        requests >= rules.minimum_runs
        and (requests - not_failed) / requests >= rules.llm_error_ratio
    ):
        ratio = (requests - not_failed) / requests
        findings.append(
            Finding(
                "llm_error_ratio",
                "critical",
                ratio,
                f"{ratio:.0%} of LLM requests failed in the last {rules.window}: "
                "see `assistant monitor health --check llm`",
            )
        )
    if open_breakers:
        findings.append(
            Finding(
                "breaker_open",
                "critical",
                len(open_breakers),
                f"circuit open for {', '.join(open_breakers)}: calls fail fast until it recovers "
                "(`assistant monitor breakers`)",
            )
        )
    if memory_unhealthy:
        findings.append(Finding("memory_high", "warning", 1, memory_unhealthy))
    for budget in budgets:
        findings.extend(_budget_findings(budget))
    return findings


def _budget_findings(budget: BudgetStatus) -> list[Finding]:
    from assistant_monitoring.usage.budget import SETTINGS

    name = "daily" if budget.period == "day" else "monthly"
    spent_in = "today" if budget.period == "day" else "this month"
    setting = SETTINGS[budget.period]
    for percent, severity in ((95, "critical"), (80, "warning"), (50, "info")):
        if budget.spent_usd >= budget.budget_usd * percent / 100:
            return [
                Finding(
                    f"{name}_cost_{percent}",
                    severity,
                    budget.spent_usd,
                    f"the LLM cost {spent_in}, ${budget.spent_usd:.2f}, is over {percent}% of "
                    f"the ${budget.budget_usd:g} budget ({setting}): "
                    "see `assistant monitor usage`",
                )
            ]  # only the highest threshold crossed
    if budget.projection_reliable and budget.projected_usd > budget.budget_usd:
        return [
            Finding(
                f"{name}_cost_projected",
                "warning",
                budget.projected_usd,
                f"at the rate so far, {spent_in}'s LLM cost will reach "
                f"${budget.projected_usd:.2f}, over the ${budget.budget_usd:g} budget "
                f"({setting}): see `assistant monitor usage`",
            )
        ]
    return []


Notifier = Callable[[str, Alert], None]


class AlertBook:
    """Alerts in ``monitoring.db``: record transitions, notify once per transition."""

    def __init__(self, store: MetricsStore, notifiers: list[Notifier] | None = None) -> None:
        self.store = store
        self.notifiers = notifiers or []

    def open_alerts(self) -> list[Alert]:
        """Alerts firing now."""
        rows = (
            self.store.connect()
            .execute(
                "SELECT id, rule, severity, state, started_at, resolved_at, value, message "
                "FROM alerts WHERE state = 'firing' ORDER BY started_at"
            )
            .fetchall()
        )
        return [Alert(*row) for row in rows]

    def recent(self, limit: int = 20) -> list[Alert]:
        """The newest alerts, firing or resolved."""
        rows = (
            self.store.connect()
            .execute(
                "SELECT id, rule, severity, state, started_at, resolved_at, value, message "
                "FROM alerts ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [Alert(*row) for row in rows]

    def changes_since(self, when: float) -> list[tuple[str, Alert]]:
        """Transitions recorded after ``when``, oldest first: ('firing' | 'resolved', alert).

        What every ``monitor serve`` process streams, whichever process evaluated the
        rules (see ``server/periodic.py``).
        """
        rows = (
            self.store.connect()
            .execute(
                "SELECT id, rule, severity, state, started_at, resolved_at, value, message "
                "FROM alerts WHERE started_at > ? OR resolved_at > ? ORDER BY updated_at",
                (when, when),
            )
            .fetchall()
        )
        events: list[tuple[float, str, Alert]] = []
        for row in rows:
            alert = Alert(*row)
            if alert.started_at > when:
                events.append((alert.started_at, "firing", alert))
            if alert.resolved_at is not None and alert.resolved_at > when:
                events.append((alert.resolved_at, "resolved", alert))
        return [(event, alert) for _, event, alert in sorted(events, key=lambda e: e[0])]

    def apply(self, findings: list[Finding], now: float | None = None) -> list[tuple[str, Alert]]:
        """Record what changed; return (event, alert) pairs: 'firing' or 'resolved'."""
        current = time.time() if now is None else now
        events: list[tuple[str, Alert]] = []
        by_rule = {finding.rule: finding for finding in findings}
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT id, rule, severity, state, started_at, resolved_at, value, message "
                "FROM alerts WHERE state = 'firing'"
            ).fetchall()
            still_open = {row[1]: Alert(*row) for row in rows}
            for rule, alert in still_open.items():
                finding = by_rule.get(rule)
                if finding is None:
                    conn.execute(
                        "UPDATE alerts SET state = 'resolved', resolved_at = ?, updated_at = ? "
                        "WHERE id = ?",
                        (current, current, alert.id),
                    )
                    alert.state, alert.resolved_at = "resolved", current
                    events.append(("resolved", alert))
                else:
                    conn.execute(
                        "UPDATE alerts SET value = ?, message = ?, updated_at = ? WHERE id = ?",
                        (finding.value, finding.message, current, alert.id),
                    )
            for rule, finding in by_rule.items():
                if rule in still_open:
                    continue
                cursor = conn.execute(
                    "INSERT INTO alerts (rule, severity, state, started_at, value, message, "
                    "updated_at) VALUES (?, ?, 'firing', ?, ?, ?, ?)",
                    (rule, finding.severity, current, finding.value, finding.message, current),
                )
                alert = Alert(
                    int(cursor.lastrowid or 0),
                    rule,
                    finding.severity,
                    "firing",
                    current,
                    None,
                    finding.value,
                    finding.message,
                )
                events.append(("firing", alert))
        for event, alert in events:
            for notify in self.notifiers:
                try:
                    notify(event, alert)
                except Exception as error:  # a notifier never stops the evaluation
                    from loguru import logger

                    logger.warning(f"alert notification failed: {error}")
        return events


def webhook_notifier(
    url: str,
    *,
    attempts: int = 3,
    timeout: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Notifier:
    """POST each transition as JSON to ``url``, retrying transient failures."""
    import urllib.error
    import urllib.request

    def notify(event: str, alert: Alert) -> None:
        body = json.dumps({"status": event, **alert.as_json()}).encode()
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(
                url, data=body, headers={"content-type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as error:
                error.close()
                if error.code < 500 and error.code != 429:
                    raise  # the receiver rejects it: retrying will not help
                if attempt == attempts:
                    raise
            except OSError:
                if attempt == attempts:
                    raise
            sleep(0.5 * 2 ** (attempt - 1))

    return notify


def log_notifier(event: str, alert: Alert) -> None:
    """Log each transition (WARNING when firing, INFO when resolved)."""
    from loguru import logger

    level = "WARNING" if event == "firing" else "INFO"
    logger.bind(event="alert", rule=alert.rule, severity=alert.severity, state=event).log(
        level, f"alert {alert.rule} {event}: {alert.message}"
    )


def evaluate_and_record(
    settings: Settings, extra: list[Notifier] | None = None
) -> tuple[list[tuple[str, Alert]], list[Alert]]:
    """Evaluate the rules over the store now; returns (transitions, alerts firing)."""
    from assistant_monitoring.breaker.store import BreakerStateStore
    from assistant_monitoring.health.checks import check_memory_sync
    from assistant_monitoring.metrics.query import query_window
    from assistant_monitoring.metrics.retention import Retention
    from assistant_monitoring.timeparse import parse_duration
    from assistant_monitoring.usage.budget import budget_statuses
    from assistant_monitoring.zones import resolve_zone

    now = time.time()
    seconds = parse_duration(settings.alerts.window, option="ALERT_WINDOW").total_seconds()
    store = MetricsStore(settings.monitoring_db_path, retention=Retention.from_settings(settings))
    breakers = BreakerStateStore(settings.monitoring_db_path)
    try:
        conn = store.connect()
        window = query_window(conn, now - seconds, now, now=now)
        budgets = budget_statuses(
            conn,
            daily_usd=settings.alerts.daily_budget_usd,
            monthly_usd=settings.alerts.monthly_budget_usd,
            zone=resolve_zone(settings.monitoring.timezone, option="MONITOR_TIMEZONE"),
            now=now,
        )
        open_breakers = [s.service for s in breakers.load_all() if s.state == "open"]
        health = settings.health
        memory = check_memory_sync(
            limit_bytes=health.memory_limit_bytes,
            degraded_percent=health.memory_degraded_percent,
            unhealthy_percent=health.memory_unhealthy_percent,
        )
        findings = evaluate_rules(
            settings,
            window,
            open_breakers=open_breakers,
            budgets=budgets,
            memory_unhealthy=memory.message if memory.status.value == "unhealthy" else None,
        )
        notifiers: list[Notifier] = [log_notifier, *(extra or [])]
        if settings.alerts.webhook_url:
            notifiers.append(webhook_notifier(settings.alerts.webhook_url))
        book = AlertBook(store, notifiers)
        events = book.apply(findings, now)
        return events, book.open_alerts()
    finally:
        breakers.close()
        store.close()
