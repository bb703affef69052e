"""Render a metrics report as rich tables, one per group."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def fmt_seconds(value: float | None) -> str:
    """0.0123 -> '12.3ms', 2.5 -> '2.50s', None -> '-'."""
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1_000_000:.0f}µs"
    if value < 0.1:
        return f"{value * 1000:.1f}ms"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.2f}s"


def fmt_ratio(value: float | None) -> str:
    """0.0123 -> '1.2%'."""
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_count(value: float | None) -> str:
    """12345 -> '12,345'."""
    return "-" if value is None else f"{value:,.0f}"


_LATENCY = ("p50", "p95", "p99", "max")  # the mean is in --json; it hides the tail


def _latency_columns(table: Table) -> None:
    for name in _LATENCY:
        table.add_column(name, justify="right")


def _latency(dist: dict[str, Any]) -> list[str]:
    return [fmt_seconds(dist[name]) for name in _LATENCY]


def _table(title: str, first: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        header_style="dim",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column(first, no_wrap=True)
    return table


def render_report(report: dict[str, Any], console: Console) -> None:
    """Print every group present in ``report``."""
    start = datetime.fromisoformat(report["start"])
    end = datetime.fromisoformat(report["end"])
    span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    console.print(f"[bold]Metrics for {report['label']}[/bold] [dim]({span})[/dim]")
    _render_pipeline(report, console)
    _render_stages(report, console)
    _render_classifiers(report, console)
    _render_llm(report, console)
    _render_database(report, console)
    _render_system(report, console)
    _render_errors(report, console)


def _render_pipeline(report: dict[str, Any], console: Console) -> None:
    pipeline = report.get("pipeline")
    if pipeline is not None and pipeline["runs"]:
        table = _table("Pipeline", "runs")
        # Interrupted runs (SIGTERM, Ctrl-C) get a column only when there are some:
        # the table must fit 80 columns.
        interrupted = pipeline.get("interrupted", 0)
        names = ("ok", "failed", *(["intr"] if interrupted else []), "err%", "/min")
        for name in names:
            table.add_column(name, justify="right")
        _latency_columns(table)
        counts = [pipeline["success"], pipeline["failure"], *([interrupted] if interrupted else [])]
        table.add_row(
            fmt_count(pipeline["runs"]),
            *(fmt_count(count) for count in counts),
            fmt_ratio(pipeline["error_ratio"]),
            f"{pipeline['runs_per_minute']:.2f}",
            *_latency(pipeline["duration_seconds"]),
        )
        console.print(table)


def _render_stages(report: dict[str, Any], console: Console) -> None:
    if report.get("stages"):
        table = _table("Stages", "stage")
        for name in ("runs", "failed", "err%"):
            table.add_column(name, justify="right")
        _latency_columns(table)
        for row in report["stages"]:
            table.add_row(
                row["stage"],
                fmt_count(row["runs"]),
                fmt_count(row["failures"]),
                fmt_ratio(row["error_ratio"]),
                *_latency(row["duration_seconds"]),
            )
        console.print(table)


def _render_classifiers(report: dict[str, Any], console: Console) -> None:
    if report.get("classifiers"):
        table = _table("Classifiers", "classifier")
        table.add_column("runs", justify="right")
        _latency_columns(table)
        table.add_column("conf. p50", justify="right")
        for row in report["classifiers"]:
            confidence = row["confidence"]["p50"]
            table.add_row(
                row["classifier"],
                fmt_count(row["duration_seconds"]["count"]),
                *_latency(row["duration_seconds"]),
                "-" if confidence is None else f"{confidence:.2f}",
            )
        console.print(table)


def _render_llm(report: dict[str, Any], console: Console) -> None:
    if report.get("llm"):
        table = _table("LLM requests", "model")
        for name in ("reqs", "errs", "err%", "p50", "p95", "p99", "ttft p50"):
            table.add_column(name, justify="right")
        usage = _table("LLM tokens and cost", "model")
        for name in ("input", "output", "cache read", "cache write", "cost"):
            usage.add_column(name, justify="right")
        for row in report["llm"]:
            dist, ttft, tokens = row["duration_seconds"], row["ttft_seconds"], row["tokens"]
            model = row["model"]
            table.add_row(
                model,
                fmt_count(row["requests"]),
                fmt_count(row["errors"]),
                fmt_ratio(row["error_ratio"]),
                fmt_seconds(dist["p50"]),
                fmt_seconds(dist["p95"]),
                fmt_seconds(dist["p99"]),
                fmt_seconds(ttft["p50"]),
            )
            usage.add_row(
                model,
                fmt_count(tokens["input"]),
                fmt_count(tokens["output"]),
                fmt_count(tokens["cache_read"]),
                fmt_count(tokens["cache_write"] + tokens.get("cache_write_1h", 0)),
                "[yellow]unpriced[/yellow]" if not row["priced"] else f"${row['cost_usd']:.4f}",
            )
        console.print(table)
        console.print(usage)
        retries = ", ".join(f"{r['provider']}: {r['retries']}" for r in report["llm_retries"])
        if retries:
            console.print(f"  retries: {retries}")


def _render_database(report: dict[str, Any], console: Console) -> None:
    if report.get("database"):
        table = _table("Database", "operation")
        table.add_column("queries", justify="right")
        _latency_columns(table)
        for row in report["database"]:
            table.add_row(
                row["operation"], fmt_count(row["queries"]), *_latency(row["duration_seconds"])
            )
        console.print(table)


def _render_system(report: dict[str, Any], console: Console) -> None:
    system = report.get("system")
    if system is not None and (system["resident_memory_bytes"] or system["cpu_seconds"]):
        memory = system["resident_memory_bytes"]
        shown = "-" if memory is None else f"{memory / 1024 / 1024:.1f} MiB"
        console.print(
            f"[bold]System[/bold]  memory (latest process) {shown}   "
            f"CPU {system['cpu_seconds']:.2f}s   metric overflows {system['metric_overflows']}   "
            f"metrics errors {system['metrics_errors']}"
        )


def _render_errors(report: dict[str, Any], console: Console) -> None:
    if report.get("errors"):
        table = _table("Errors", "type")
        table.add_column("context")
        table.add_column("count", justify="right")
        for row in report["errors"]:
            table.add_row(row["type"], row["context"], fmt_count(row["count"]))
        console.print(table)
