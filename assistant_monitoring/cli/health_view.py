"""A health report for a terminal: overall status, then one line per check."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from assistant_monitoring.health.model import HealthReport, Status

_STYLE = {Status.HEALTHY: "green", Status.DEGRADED: "yellow", Status.UNHEALTHY: "red"}
_MARK = {Status.HEALTHY: "✓", Status.DEGRADED: "!", Status.UNHEALTHY: "✗"}


def render_health(report: HealthReport, console: Console, *, title: str) -> None:
    """Print the report."""
    style = _STYLE[report.status]
    console.print(
        f"[bold {style}]{_MARK[report.status]} {report.status.value.upper()}[/bold {style}]  "
        f"[dim]{title} · {report.duration_seconds * 1000:.0f} ms[/dim]"
    )
    table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("message", overflow="fold")
    table.add_column("took", justify="right", no_wrap=True)
    for check in report.checks:
        check_style = _STYLE[check.status]
        value = ""
        if check.observed_value is not None:
            value = f"{check.observed_value:g} {check.observed_unit or ''}".strip()
        table.add_row(
            f"[{check_style}]{_MARK[check.status]}[/{check_style}]",
            check.name,
            f"[{check_style}]{check.status.value}[/{check_style}]",
            value,
            check.message,
            f"{check.duration_seconds * 1000:.0f} ms",
        )
    console.print(table)
