"""The ``monitor`` command group, mounted by the assistant's root command."""

from __future__ import annotations

import typer

from assistant_monitoring.cli import logs_cmd, metrics_cmd

app = typer.Typer(
    help="Watch the assistant: logs (and, as they land, health, metrics, dashboard).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command("logs")(logs_cmd.logs)
app.command("metrics")(metrics_cmd.metrics)
