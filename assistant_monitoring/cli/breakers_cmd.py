"""``assistant monitor breakers``: circuit breaker states; ``--reset SERVICE`` closes one."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import typer

from assistant_monitoring.cli.state import current_state
from assistant_monitoring.sqlitefile import present


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def breakers(
    reset: str | None = typer.Option(
        None, "--reset", metavar="SERVICE", help="Close this breaker (e.g. llm:anthropic)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List the circuit breakers: state, failures, when opened, when they retry.

    A breaker opens after repeated failures of its service (llm:anthropic, llm:openai,
    database) and makes every assistant process fail fast until its retry time.

    Example: assistant monitor breakers --reset llm:anthropic
    """
    from assistant_monitoring.breaker import BreakerStateStore, CircuitBreaker
    from assistant_monitoring.breaker.registry import breaker_listeners
    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.metrics.runtime import current_runtime

    state = current_state()
    settings = state.start() if reset else state.load().settings
    path = settings.monitoring_db_path
    states = []
    if present(path):
        store = BreakerStateStore(path, read_only_ok=reset is None)
        try:
            states = store.load_all()
        finally:
            store.close()
    if reset is not None:
        known = [s.service for s in states]
        if reset not in known:
            listed = ", ".join(known) or "none has tripped yet"
            raise UsageError(f"--reset: no breaker named '{reset}' (known: {listed})")
        runtime = current_runtime()
        store = BreakerStateStore(path)
        breaker = CircuitBreaker(reset, store=store)
        for listener in breaker_listeners(runtime.instrumentation if runtime else None):
            breaker.on_state_change(listener)
        breaker.reset()
        store.close()
        typer.echo(f"closed {reset}")
        return
    now = time.time()
    if as_json:
        rows = [
            {
                "service": s.service,
                "state": s.state,
                "failures": s.failures,
                "trips": s.trips,
                "opened_at": _when(s.opened_at) if s.opened_at else None,
                "retry_at": _when(s.retry_at) if s.retry_at else None,
                "retry_in_seconds": max(0.0, s.retry_at - now) if s.retry_at else None,
                "reason": s.reason,
            }
            for s in states
        ]
        typer.echo(json.dumps({"breakers": rows}, indent=2))
        return
    if not states:
        typer.echo("No circuit breaker has tripped: every service is closed (healthy).")
        return
    from rich.table import Table

    table = Table(box=None, header_style="dim", pad_edge=False)
    for column in ("service", "state", "failures", "trips", "opened at", "retry at", "reason"):
        table.add_column(column, overflow="fold")
    colors = {"closed": "green", "open": "red", "half_open": "yellow"}
    for s in states:
        retry = _when(s.retry_at) if s.state != "closed" else "-"
        if s.state == "open" and s.retry_at:
            retry += f" (in {max(0.0, s.retry_at - now):.0f}s)"
        color = colors.get(s.state, "white")
        table.add_row(
            s.service,
            f"[{color}]{s.state}[/{color}]",
            str(s.failures),
            str(s.trips),
            _when(s.opened_at) if s.state != "closed" else "-",
            retry,
            s.reason or "",
        )
    state.console().print(table)
