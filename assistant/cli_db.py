"""``assistant db migrate|status|check``: the databases' schema, contents and state."""

from __future__ import annotations

import json
from typing import Any

import typer

from assistant_monitoring.cli.state import current_state

app = typer.Typer(
    help="The databases: migrate, status, check.", no_args_is_help=True, rich_markup_mode=None
)


@app.command("migrate")
def migrate() -> None:
    """Create or upgrade the database (idempotent: safe to run at every deploy).

    Example: assistant -e production db migrate
    """
    from assistant.storage import Database
    from assistant_monitoring import aio

    settings = current_state().start(metrics=False)

    async def run() -> list[str]:
        database = Database(
            settings.database_path, busy_timeout_ms=settings.database.busy_timeout_ms
        )
        try:
            return await database.migrate()
        finally:
            await database.close()

    applied = aio.run(run())
    if applied:
        typer.echo(f"applied {', '.join(applied)} to {settings.database_path}")
    else:
        typer.echo(f"{settings.database_path} is up to date")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Show the database's path, applied and pending migrations, and its size."""
    from assistant.storage import MIGRATIONS, ConversationRepository, Database
    from assistant_monitoring import aio

    settings = current_state().load().settings
    path = settings.database_path

    async def run() -> tuple[list[str], tuple[int, int]]:
        database = Database(path, busy_timeout_ms=settings.database.busy_timeout_ms)
        try:
            applied = await database.applied()
            counts = await ConversationRepository(database).count() if applied else (0, 0)
            return applied, counts
        finally:
            await database.close()

    applied: list[str] = []
    counts = (0, 0)
    if path.exists():
        applied, counts = aio.run(run())
    pending = [m.name for m in MIGRATIONS if m.name not in applied]
    size = path.stat().st_size if path.exists() else 0
    document: dict[str, object] = {
        "path": str(path),
        "exists": path.exists(),
        "applied": applied,
        "pending": pending,
        "conversations": counts[0],
        "messages": counts[1],
        "size_bytes": size,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    if not path.exists():
        typer.echo(f"{path} does not exist yet: run `assistant db migrate`")
        return
    typer.echo(f"database   {path} ({size / 1024:.0f} KiB)")
    typer.echo(f"applied    {', '.join(applied) or 'none'}")
    typer.echo(f"pending    {', '.join(pending) or 'none'}")
    typer.echo(f"contents   {counts[0]} conversations, {counts[1]} messages")


@app.command("check")
def check(
    quick: bool = typer.Option(
        False, "--quick", help="PRAGMA quick_check instead of integrity_check (faster, less)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Check both databases: integrity, write access, sizes, rows, schema.

    Tells corrupt, truncated, empty, read-only, locked, missing and permission-denied
    apart, and says what to do for each. Changes nothing. Exit 0: both fine;
    1: a problem found; 2: invalid usage or settings.

    Example: assistant -e production db check --json
    """
    from assistant_monitoring.dbcheck import check_database
    from assistant_monitoring.sqlitefile import Subject

    settings = current_state().load().settings
    busy = settings.database.busy_timeout_ms
    checks = [
        check_database(
            "conversations",
            Subject(settings.database_path, "the conversations database", "DATABASE_PATH"),
            quick=quick,
            busy_timeout_ms=busy,
            missing_hint="`assistant db migrate` creates it",
        ),
        check_database(
            "metrics",
            Subject(settings.monitoring_db_path, "the metrics store", "MONITORING_DB_PATH"),
            quick=quick,
            busy_timeout_ms=busy,
            missing_hint="the first command that records metrics creates it",
        ),
    ]
    if as_json:
        typer.echo(
            json.dumps(
                {"ok": all(c.ok for c in checks), "databases": [c.as_json() for c in checks]},
                indent=2,
            )
        )
    else:
        _print_checks(checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _print_checks(checks: list[Any]) -> None:
    from datetime import UTC, datetime

    def when(value: float | None) -> str:
        if value is None:
            return "-"
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")

    for found in checks:
        mark = "ok" if found.ok else found.status.upper().replace("_", " ")
        typer.echo(f"{found.role:<14} {mark:<10} {found.path}")
        if not found.ok:
            typer.echo(f"  {found.message}")
            continue
        typer.echo(
            f"  {_size(found.size_bytes)}, WAL {_size(found.wal_bytes)}; "
            f"schema: {', '.join(found.migrations) or 'none'}"
        )
        for table in found.tables:
            span = f"  {when(table.oldest)} .. {when(table.newest)}" if table.oldest else ""
            typer.echo(f"  {table.name:<20} {table.rows:>10,} rows{span}")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 1024:.0f} KiB"
