"""``assistant monitor alerts``: evaluate the local alert rules now and list the alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from assistant_monitoring.cli.state import current_state


def alerts(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    history: int = typer.Option(
        10, "--history", "-n", min=0, help="Also list this many past alerts."
    ),
) -> None:
    """Evaluate the alert rules over the store, record what changed, list what fires.

    Rules: pipeline failure ratio, slow pipeline (p95), stage failures, LLM error
    ratio, breaker open, memory high, the day's and the month's cost against
    MONITOR_DAILY_BUDGET_USD and MONITOR_MONTHLY_BUDGET_USD (at 50/80/95%, and when
    the projection to the period's end is over; the figures of `monitor usage`). A
    new alert is POSTed once to ALERT_WEBHOOK_URL when set; one still
    firing is not sent again. `monitor serve` evaluates the same rules every few
    seconds. Exit code: 0 nothing firing, 1 something firing.

    Example: assistant monitor alerts --json
    """
    from assistant_monitoring.alerts import AlertBook, evaluate_and_record
    from assistant_monitoring.metrics.store import MetricsStore

    settings = current_state().start()
    events, firing = evaluate_and_record(settings)
    store = MetricsStore(settings.monitoring_db_path, read_only_ok=True)
    try:
        past = [a for a in AlertBook(store).recent(history + len(firing)) if a.state != "firing"]
    finally:
        store.close()
    past = past[:history]
    if as_json:
        document = {
            "firing": [a.as_json() for a in firing],
            "changed": [{"event": event, **alert.as_json()} for event, alert in events],
            "resolved": [a.as_json() for a in past],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        console = current_state().console()
        if not firing:
            console.print("[green]✓ no alert firing[/green]")
        colors = {"critical": "red", "warning": "yellow", "info": "cyan"}
        for alert in firing:
            since = datetime.fromtimestamp(alert.started_at, UTC).strftime("%H:%M:%S UTC")
            color = colors.get(alert.severity, "white")
            console.print(
                f"[{color}]● {alert.severity:<8}[/{color}] {alert.rule}  [dim]since {since}[/dim]"
            )
            console.print(f"  {alert.message}")
        for alert in past:
            ended = datetime.fromtimestamp(alert.resolved_at or alert.started_at, UTC).strftime(
                "%m-%d %H:%M"
            )
            console.print(f"[dim]✓ resolved {ended}  {alert.rule}: {alert.message}[/dim]")
    if firing:
        raise typer.Exit(1)
