"""The ``monitor`` command group, mounted by the assistant's root command."""

from __future__ import annotations

import typer

from assistant_monitoring.cli import (
    alerts_cmd,
    breakers_cmd,
    dashboard_cmd,
    health_cmd,
    logs_cmd,
    metrics_cmd,
    runs_cmd,
    serve_cmd,
    statusline_cmd,
    usage_cmd,
)

app = typer.Typer(
    help="Watch the assistant: health, metrics, usage, runs, logs, breakers, dashboard, serve.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command("health", epilog=health_cmd.HEALTH_EPILOG, cls=health_cmd.HealthCommand)(
    health_cmd.health
)
app.command("metrics")(metrics_cmd.metrics)
app.command("usage")(usage_cmd.usage)
app.command("statusline")(statusline_cmd.statusline)
app.command("logs")(logs_cmd.logs)
app.add_typer(runs_cmd.app, name="runs")
app.command("breakers")(breakers_cmd.breakers)
app.command("alerts")(alerts_cmd.alerts)
app.command("dashboard")(dashboard_cmd.dashboard)
app.command("serve")(serve_cmd.serve)
