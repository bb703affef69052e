"""``assistant db migrate|status``: the conversations database's schema and contents."""

from __future__ import annotations

import json

import typer

from assistant_monitoring.cli.state import current_state

app = typer.Typer(
    help="The conversations database: migrate, status.", no_args_is_help=True, rich_markup_mode=None
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
