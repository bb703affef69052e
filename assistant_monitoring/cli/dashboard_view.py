"""Render a dashboard frame with rich: fits 80x24, uses more room when there is more."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from assistant_monitoring.cli.metrics_view import fmt_ratio, fmt_seconds
from assistant_monitoring.dashboard.data import Snapshot

_BARS = " ▁▂▃▄▅▆▇█"
_STATUS_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}
_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "red"}


def sparkline(values: list[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled to the largest."""
    shown = values[-width:] if width > 0 else []
    peak = max(shown, default=0.0)
    if peak <= 0:
        return "▁" * len(shown)
    return "".join(_BARS[max(1, round(v / peak * (len(_BARS) - 1)))] if v else " " for v in shown)


def _health(snapshot: Snapshot) -> RenderableType:
    report = snapshot.health
    if report is None:
        return Text("not checked", style="dim")
    table = Table.grid(padding=(0, 1))
    for check in report.checks:
        style = _STATUS_STYLE[check.status.value]
        table.add_row(
            Text(check.name),
            Text(check.status.value, style=style),
            Text(check.message, style="dim", overflow="ellipsis", no_wrap=True),
        )
    return table


def _breakers(snapshot: Snapshot) -> RenderableType:
    if not snapshot.breakers:
        return Text("none tripped", style="green")
    table = Table.grid(padding=(0, 1))
    for state in snapshot.breakers:
        table.add_row(state.service, Text(state.state, style=_BREAKER_STYLE.get(state.state, "")))
    return table


def _activity(snapshot: Snapshot, width: int) -> RenderableType:
    pipeline = snapshot.report.get("pipeline") or {}
    runs = pipeline.get("runs", 0)
    duration = pipeline.get("duration_seconds") or {}
    llm = snapshot.report.get("llm") or []
    llm_p50 = max((row["duration_seconds"]["p50"] or 0 for row in llm), default=None)
    llm_p95 = max((row["duration_seconds"]["p95"] or 0 for row in llm), default=None)
    lines = [
        Text.assemble(
            ("runs ", "dim"),
            f"{runs:,}",
            ("  /min ", "dim"),
            f"{pipeline.get('runs_per_minute', 0):.2f}",
            ("  errors ", "dim"),
            (fmt_ratio(pipeline.get("error_ratio")), "red" if pipeline.get("failure") else "green"),
        ),
        Text.assemble(
            ("pipeline p50 ", "dim"),
            fmt_seconds(duration.get("p50")),
            ("  p95 ", "dim"),
            fmt_seconds(duration.get("p95")),
            ("   llm p50 ", "dim"),
            fmt_seconds(llm_p50),
            ("  p95 ", "dim"),
            fmt_seconds(llm_p95),
        ),
        Text.assemble(
            ("runs/min ", "dim"), (sparkline(snapshot.runs_per_minute, width - 12), "cyan")
        ),
        Text.assemble(
            ("fails/min ", "dim"), (sparkline(snapshot.failures_per_minute, width - 12), "red")
        ),
    ]
    return Group(*lines)


def _models(snapshot: Snapshot) -> RenderableType:
    rows = snapshot.report.get("llm") or []
    if not rows:
        return Text("no LLM calls in this period", style="dim")
    table = Table(box=None, header_style="dim", pad_edge=False, expand=True)
    for column in ("model", "reqs", "errs", "tokens", "cost"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for row in rows:
        cost = "unpriced" if not row["priced"] else f"${row['cost_usd']:.4f}"
        tokens = row["tokens"]["input"] + row["tokens"]["output"]
        table.add_row(
            row["model"], f"{row['requests']:,}", f"{row['errors']:,}", f"{tokens:,}", cost
        )
    return table


def _failures(snapshot: Snapshot) -> RenderableType:
    if not snapshot.failed_runs and not snapshot.error_lines and not snapshot.alerts:
        return Text("no alerts, no failed runs, no errors", style="green")
    lines: list[Text] = []
    for alert in snapshot.alerts[:3]:
        color = "red" if alert.severity == "critical" else "yellow"
        lines.append(Text.assemble(("● ", color), (alert.rule, color), f" {alert.message}"))
    for run in snapshot.failed_runs[:3]:
        when = datetime.fromtimestamp(run.started_at, UTC).strftime("%H:%M:%S")
        lines.append(
            Text.assemble(
                (f"{when} ", "dim"),
                (f"{run.failed_stage}: {run.error_type}", "red"),
                (f" {run.id}", "dim"),
            )
        )
    for entry in snapshot.error_lines[-3:]:
        when = str(entry.get("ts", ""))[11:19]
        lines.append(
            Text.assemble(
                (f"{when} ", "dim"),
                Text(str(entry.get("msg", "")), overflow="ellipsis", no_wrap=True),
            )
        )
    for line in lines:
        line.no_wrap, line.overflow = True, "ellipsis"
    return Group(*lines)


def render_frame(snapshot: Snapshot, *, width: int, height: int, profile: str) -> RenderableType:
    """The whole screen for one snapshot."""
    overall = snapshot.health.status.value if snapshot.health else "unknown"
    style = _STATUS_STYLE.get(overall, "white")
    when = datetime.fromtimestamp(snapshot.taken_at, UTC).strftime("%H:%M:%S UTC")
    cost_today = "-" if snapshot.cost_today is None else f"${snapshot.cost_today:.4f}"
    alerts = f" · {len(snapshot.alerts)} alerts" if snapshot.alerts else ""
    header = Text.assemble(
        (f" {overall.upper()} ", f"bold reverse {style}"),
        (alerts, "bold red"),
        f" {profile} · {snapshot.period} · {when} · today {cost_today}",
        ("  q quits", "dim"),
    )
    layout = Layout()
    compact = height < 30
    layout.split_column(
        Layout(header, name="header", size=1),
        Layout(name="top", size=7 if compact else 9),
        Layout(
            Panel(_activity(snapshot, width - 4), title="activity", border_style="cyan"),
            name="activity",
            size=6,
        ),
        Layout(name="bottom"),
    )
    layout["top"].split_row(
        Layout(Panel(_health(snapshot), title="health", border_style=style), ratio=3),
        Layout(Panel(_breakers(snapshot), title="breakers", border_style="blue"), ratio=1),
    )
    layout["bottom"].split_row(
        Layout(Panel(_models(snapshot), title="models", border_style="magenta"), ratio=3),
        Layout(Panel(_failures(snapshot), title="alerts & failures", border_style="red"), ratio=2),
    )
    return layout
