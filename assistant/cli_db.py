"""``assistant db migrate|status|check``: the databases' schema, contents and state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from assistant_monitoring.cli.state import current_state

app = typer.Typer(
    help="The databases: migrate, status, check, backup, restore, vacuum.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("migrate")
def migrate() -> None:
    """Create or upgrade the database (idempotent: safe to run at every deploy).

    Example: assistant -e production db migrate
    """
    settings = current_state().start(metrics=False)
    applied = _migrate_conversations(settings)
    if applied:
        typer.echo(f"applied {', '.join(applied)} to {settings.database_path}")
    else:
        typer.echo(f"{settings.database_path} is up to date")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Show the database's path, applied and pending migrations, and its size."""
    from assistant.storage import MIGRATIONS, ConversationRepository, Database
    from assistant_monitoring import aio
    from assistant_monitoring.sqlitefile import present

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
    exists = present(path)  # a symlink loop too: opening it says what is wrong
    if exists:
        applied, counts = aio.run(run())
    Database(path).refuse_newer(applied)  # what `ask` would refuse, status refuses too
    pending = [m.name for m in MIGRATIONS if m.name not in applied]
    size = path.stat().st_size if exists else 0
    document: dict[str, object] = {
        "path": str(path),
        "exists": exists,
        "applied": applied,
        "pending": pending,
        "conversations": counts[0],
        "messages": counts[1],
        "size_bytes": size,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    if not exists:
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
    from assistant_monitoring.dbcheck import check_managed
    from assistant_monitoring.inventory import managed_databases

    settings = current_state().load().settings
    busy = settings.database.busy_timeout_ms
    checks = [
        check_managed(managed, quick=quick, busy_timeout_ms=busy, backup_dir=settings.backup_dir)
        for managed in managed_databases(settings)
    ]
    from assistant_monitoring.metrics.pending import waiting
    from assistant_monitoring.metrics.store import MetricsStore

    pending = waiting(MetricsStore(settings.monitoring_db_path).pending_dir)
    if as_json:
        document = {
            "ok": all(c.ok for c in checks),
            "databases": [c.as_json() for c in checks],
            "pending": pending.as_json(),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_checks(checks)
        _print_pending(pending)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _print_pending(pending: Any) -> None:
    """What waits for monitoring.db (written while it was locked), and what was set aside."""
    if pending.runs or pending.flushes:
        typer.echo(
            f"pending        {pending.runs} runs, {pending.flushes} metric flushes in "
            f"{pending.folder}: the next ask or chat adds them in"
        )
    if pending.set_aside:
        typer.echo(
            f"set aside      {len(pending.set_aside)} files in {pending.folder} that are no "
            f"pending record ({', '.join(pending.set_aside[:3])}"
            f"{', ...' if len(pending.set_aside) > 3 else ''}): look at them, then delete them"
        )


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


@app.command("backup")
def backup(
    destination: Path | None = typer.Argument(
        None, help="Folder to put the backup in (default MONITOR_BACKUP_DIR, DATA_DIR/backups)."
    ),
    keep: int | None = typer.Option(
        None, "--keep", min=1, help="Then keep only the newest N of our backups in the folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (no progress)."),
) -> None:
    """Back up both databases, consistently, while everything keeps running.

    Makes DEST/assistant-backup-YYYYmmddTHHMMSSZ/ with assistant.db, monitoring.db and
    manifest.json (versions, migrations, row counts, sha256 of each file). Each
    database is copied as of one instant (SQLite's online backup, one read
    transaction: writers never wait), and each copy passes quick_check before the
    folder gets its name. --keep removes only older backups this tool made, never the
    new one. Exit 0: done; 1: refused or failed, with no backup removed.

    Example: assistant -e production db backup /var/backups/assistant --keep 8
    """
    import sys

    from assistant_monitoring.backup import make_backup
    from assistant_monitoring.inventory import managed_databases

    settings = current_state().load().settings
    target = destination or settings.backup_dir
    databases = managed_databases(settings)
    busy = settings.database.busy_timeout_ms
    if as_json or not sys.stderr.isatty():
        made = make_backup(databases, target, busy_timeout_ms=busy, keep=keep)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        columns = (BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, console=current_state().console(stderr=True)) as bar:
            task = bar.add_task("backup", total=None)

            def advance(copied: int, total: int) -> None:
                bar.update(task, completed=copied, total=total)

            made = make_backup(databases, target, busy_timeout_ms=busy, keep=keep, progress=advance)
    if as_json:
        document = {
            "path": str(made.folder),
            **made.manifest.as_json(),
            "cleaned": [str(p) for p in made.cleaned],
            "pruned": [str(p) for p in made.pruned],
            "left": [str(p) for p in made.left],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    for leftover in made.cleaned:
        typer.echo(f"removed {leftover}, left by an interrupted backup")
    for kept in made.left:
        typer.echo(
            f"note: left {kept} as it was: named like a cut-off backup, but it may not be one "
            "of ours (its mark names another folder, or it holds other files)",
            err=True,
        )
    for old in made.pruned:
        typer.echo(f"removed the older backup {old} (--keep {keep})")
    sizes = ", ".join(f"{e.name} {_size(e.bytes)}" for e in made.manifest.files)
    typer.echo(f"backed up to {made.folder} ({sizes}; each copy checked)")


@app.command("restore")
def restore(
    folder: Path = typer.Argument(..., help="A backup folder made by `assistant db backup`."),
    force: bool = typer.Option(
        False, "--force", help="Restore even while another process has a database open."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Restore both databases from a backup, verified first; the current files are kept.

    Checks everything before touching anything (manifest, every file's sha256,
    integrity and schema, free space); refuses while another process has a database
    open (stop monitor serve first); then, under a journal that the next command
    finishes or undoes if this one is killed, moves each current file aside as
    NAME.before-restore-STAMP (with its -wal and -shm as NAME.before-restore-STAMP-wal,
    -shm: never deleted), puts the backup in place and applies pending migrations. A
    symlinked DATABASE_PATH stays a link: the file it points to is replaced. Exit 0:
    restored; 1: refused or failed, with nothing changed.

    Example: assistant db restore ~/.local/share/assistant/backups/assistant-backup-20261202T040000Z
    """
    from assistant_monitoring.inventory import managed_databases
    from assistant_monitoring.restore import restore as restore_backup

    settings = current_state().load().settings
    manifest, restored = restore_backup(
        folder, managed_databases(settings), data_dir=settings.data_dir, force=force
    )
    try:
        applied = _migrate_both(settings)
    except Exception as error:
        from assistant_monitoring.backupfolder import BackupError

        # The swap is done and checked; only the schema upgrade is left, and any
        # later open (or `db migrate`) does it. Say exactly that, not "nothing changed".
        raise BackupError(
            f"restored from {folder}, but the pending migrations could not be applied "
            f"({error}): run `assistant db migrate`"
        ) from error
    if as_json:
        document = {
            "restored_from": str(folder),
            "created_at": manifest.created_at,
            "databases": [r.__dict__ for r in restored],
            "migrations_applied": applied,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    from assistant_monitoring.errors import shown

    typer.echo(f"restored from {folder} (made {shown(manifest.created_at)})")
    for item in restored:
        via = f" (where {item.link} points)" if item.link else ""
        aside = (
            f"; the current one is kept as {', '.join(item.moved_aside)}"
            if item.moved_aside
            else ""
        )
        typer.echo(f"  {item.role}: {item.path}{via}{aside}")
    for managed in managed_databases(settings):
        # A backup made while one database did not exist yet holds only the other.
        if managed.role not in {item.role for item in restored}:
            typer.echo(f"  {managed.role}: not in this backup, left as it was")
    if applied:
        typer.echo(f"  applied {', '.join(applied)}")


def _migrate_conversations(settings: Any) -> list[str]:
    """Create or upgrade assistant.db; the migrations applied."""
    from assistant.storage import Database
    from assistant_monitoring import aio

    async def run() -> list[str]:
        database = Database(
            settings.database_path, busy_timeout_ms=settings.database.busy_timeout_ms
        )
        try:
            return await database.migrate()
        finally:
            await database.close()

    return aio.run(run())


def _migrate_both(settings: Any) -> list[str]:
    """Bring both restored databases to this version's schema (the normal open path)."""
    from assistant_monitoring.metrics.store import MetricsStore

    applied = _migrate_conversations(settings) if settings.database_path.exists() else []
    if settings.monitoring_db_path.exists():
        store = MetricsStore(settings.monitoring_db_path)
        try:
            store.connect()  # migrates
        finally:
            store.close()
    return applied


@app.command("vacuum")
def vacuum_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Compact both databases and report their sizes before and after.

    Also makes freed pages returnable from then on (auto_vacuum = incremental), for
    databases made by an older version. Takes each database's write lock for as long
    as the copy takes: run it when little is writing. Both are checked first (a
    damaged, newer or odd file is refused, and then neither is compacted). Exit 0:
    done; 1: a database could not be compacted (it says why).

    Example: assistant db vacuum
    """
    from assistant_monitoring.inventory import managed_databases
    from assistant_monitoring.vacuum import vacuum_all

    settings = current_state().load().settings
    done = vacuum_all(
        managed_databases(settings), busy_timeout_ms=settings.database.busy_timeout_ms
    )
    results: list[dict[str, Any]] = [
        {"role": m.role, "path": str(m.subject.path), "before": before, "after": after}
        for m, before, after in done
    ]
    if as_json:
        typer.echo(json.dumps({"databases": results}, indent=2))
        return
    if not results:
        typer.echo("nothing to compact: neither database exists yet")
    for item in results:
        sizes = f"{_size(item['before'])} -> {_size(item['after'])}"
        typer.echo(f"{item['role']:<14} {sizes:<22} {item['path']}")
