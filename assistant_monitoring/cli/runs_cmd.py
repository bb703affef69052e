"""``assistant monitor runs``: the pipeline runs, newest first; ``runs show ID``: one run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from assistant_monitoring.cli.state import current_state

if TYPE_CHECKING:
    from assistant_monitoring.runs import RunStore

app = typer.Typer(
    help="Pipeline runs: every message's trace (status, stages, model, tokens, cost, error).",
    invoke_without_command=True,
    rich_markup_mode=None,
)


_COLORS = {
    "success": "green",
    "failure": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "abandoned": "magenta",
}


def _store() -> RunStore | None:
    from assistant_monitoring.runs import RunStore

    return RunStore.reading(current_state().load().settings)


@app.callback()
def runs(
    ctx: typer.Context,
    status: str | None = typer.Option(
        None,
        "--status",
        "-s",
        help="success, failure (or failed), interrupted, running or abandoned (running "
        "longer than any run can: its process was killed).",
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000, help="How many runs."),
    since: str | None = typer.Option(
        None, "--since", help="Only runs newer than this: 1h, 7d, an ISO time."
    ),
    conversation: str | None = typer.Option(
        None, "--conversation", "-c", help="Only this conversation."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List pipeline runs, newest first.

    Examples:

      assistant monitor runs --status failed --since 1h

      assistant monitor runs show run_3f9a
    """
    if ctx.invoked_subcommand is not None:
        return
    from assistant_monitoring.runs import parse_status
    from assistant_monitoring.timeparse import parse_since

    status = parse_status(status, option="--status")
    store = _store()
    if store is None:
        typer.echo("No runs recorded yet.")
        return
    found = store.query(
        status=status,
        limit=limit,
        since=parse_since(since).timestamp() if since else None,
        conversation=conversation,
    )
    store.close()
    if as_json:
        typer.echo(json.dumps({"runs": [run.as_json() for run in found]}, indent=2))
        return
    if not found:
        typer.echo("No runs match.")
        return
    from rich.table import Table

    table = Table(box=None, header_style="dim", pad_edge=False)
    # The model is in `runs show` and --json: at 80 columns these fit on one line.
    columns = ("time", "run", "status", "total", "stages ms", "tokens", "cost", "error")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column != "error")
    for run in found:
        color = _COLORS.get(run.status, "red")
        # context/classify/generate/persist in ms; ✗ marks the stage that failed.
        stages = "/".join(
            f"{s.duration_ms:.0f}{'✗' if s.status != 'success' else ''}" for s in run.stages
        )
        cost = "-" if run.cost_usd is None else f"${run.cost_usd:.4f}"
        error = f"{run.failed_stage}: {run.error_type}" if run.error_type else ""
        table.add_row(
            datetime.fromtimestamp(run.started_at, UTC).strftime("%H:%M:%S"),
            run.id,
            f"[{color}]{run.status}[/{color}]",
            "-" if run.status in ("running", "abandoned") else f"{run.duration_ms:.0f} ms",
            stages,
            f"{run.input_tokens}/{run.output_tokens}",
            cost,
            error,
        )
    current_state().console().print(table)


@app.command("show")
def show(
    run_id: str = typer.Argument(
        ...,
        help="A run id, a unique prefix of it, its trace id (32 hex digits; the runs of "
        "one TRACEPARENT share one) or its root span id (16 hex digits).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show one run: ids, outcome, classifiers, usage, and a timeline of its stages."""
    from assistant_monitoring.errors import UsageError, shown

    store = _store()
    run = store.get(run_id) if store is not None else None
    if store is not None:
        store.close()
    if run is None:
        raise UsageError(
            f"no run matches '{shown(run_id)}' (or several do): see `assistant monitor runs`"
        )
    if as_json:
        typer.echo(json.dumps(run.as_json(), indent=2))
        return
    console = current_state().console()
    color = _COLORS.get(run.status, "red")
    started = datetime.fromtimestamp(run.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    console.print(
        f"[bold]{run.id}[/bold]  [{color}]{run.status}[/{color}]  "
        f"{run.duration_ms:.1f} ms  [dim]{started}[/dim]"
    )
    console.print(f"conversation {run.conversation_id}  message {run.message_id}")
    if run.trace_id:
        console.print(f"trace {run.trace_id}  span {run.span_id}")
    console.print(
        f"model {run.provider}/{run.model}  retries {run.retries}  ttft "
        f"{'-' if run.ttft_ms is None else f'{run.ttft_ms:.0f} ms'}"
    )
    cost = "unpriced" if run.cost_usd is None else f"${run.cost_usd:.6f}"
    reasoning = f" (reasoning {run.reasoning_tokens})" if run.reasoning_tokens else ""
    console.print(
        f"tokens in {run.input_tokens} out {run.output_tokens}{reasoning} cache read "
        f"{run.cache_read_tokens} write 5m {run.cache_write_tokens} 1h "
        f"{run.cache_write_1h_tokens}  cost {cost}"
    )
    if run.repo or run.session_id:
        where = f"repo {run.repo}" + (f" ({run.branch})" if run.branch else "") if run.repo else ""
        console.print(f"{where}  session {run.session_id or '-'}".strip())
    for name, result in run.classifiers.items():
        label, confidence, outcome = (
            result.get("label"),
            result.get("confidence"),
            result.get("status"),
        )
        console.print(f"classifier {name}: {label} ({confidence}) {outcome}")
    if run.error_type:
        verb = "interrupted in" if run.status == "interrupted" else "failed at"
        console.print(
            f"[{color}]{verb} {run.failed_stage}: {run.error_type}: {run.error_message}[/{color}]"
        )
    width = 40
    total = max(run.duration_ms, 0.001)
    console.print("[dim]stage timeline[/dim]")
    for stage in run.stages:
        offset = int(stage.started_ms / total * width)
        length = max(1, int(stage.duration_ms / total * width))
        bar = " " * offset + "█" * min(length, width - offset)
        mark = "" if stage.status == "success" else f" [red]{stage.error_type}[/red]"
        console.print(f"  {stage.name:<9} {bar:<{width}} {stage.duration_ms:9.1f} ms{mark}")
    if run.prompt is not None:
        console.print(f"[dim]prompt:[/dim] {run.prompt}")
    if run.response is not None:
        console.print(f"[dim]response:[/dim] {run.response}")
