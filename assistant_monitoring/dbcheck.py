"""``assistant db check``: what state each database is in, and what to do about it.

For ``assistant.db`` and ``monitoring.db``, without changing either:

1. the checks SQLite would not make (:func:`~assistant_monitoring.sqlitefile.refuse_before_open`:
   missing, empty, a directory in the way, unreadable);
2. ``PRAGMA integrity_check`` (``quick_check`` with ``--quick``) on a read-only
   connection: corrupt or truncated, said the way every command says it;
3. whether a writer could get in: ``BEGIN IMMEDIATE`` then ``ROLLBACK`` within the
   busy timeout, which tells a read-only file, directory or file system, a full
   disk, and a write lock held by another process apart;
4. the facts: size, WAL size, applied migrations, and per table its rows and its
   oldest and newest row (where the table has a time column).

A problem found makes the command exit 1; every database fine, 0.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant_monitoring.sqlitefile import (
    Diagnosis,
    Subject,
    diagnose,
    open_read_only,
    refuse_before_open,
)

# The column that says when each row happened, for the oldest/newest facts.
_TIME_COLUMNS = {
    "conversations": "updated_at",
    "messages": "created_at",
    "pipeline_runs": "started_at",
    "alerts": "started_at",
    "samples": "start",
}
_PROBLEMS_SHOWN = 5


@dataclass
class TableFacts:
    """One table's size and span."""

    name: str
    rows: int
    oldest: float | None = None
    newest: float | None = None


@dataclass
class DatabaseCheck:
    """What ``db check`` found for one database."""

    role: str  # "conversations" | "metrics"
    path: str
    status: str  # "ok", "missing", or a Diagnosis kind ("corrupt", "locked", ...)
    message: str  # "ok", or the one line that says what is wrong and what to do
    size_bytes: int = 0
    wal_bytes: int = 0
    migrations: list[str] = field(default_factory=list)
    tables: list[TableFacts] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class Managed:
    """A database the ``db`` commands look after."""

    role: str  # "conversations" | "metrics"
    subject: Subject
    missing_hint: str  # what creates it, for a database not there yet
    file_name: str  # its name inside a backup


def managed_databases(settings: Any) -> list[Managed]:
    """Both databases of ``settings``, conversations first."""
    return [
        Managed(
            "conversations",
            Subject(settings.database_path, "the conversations database", "DATABASE_PATH"),
            "`assistant db migrate` creates it",
            "assistant.db",
        ),
        Managed(
            "metrics",
            Subject(settings.monitoring_db_path, "the metrics store", "MONITORING_DB_PATH"),
            "the first command that records metrics creates it",
            "monitoring.db",
        ),
    ]


_DAMAGED = ("corrupt", "truncated", "empty")


def check_managed(
    managed: Managed, *, quick: bool, busy_timeout_ms: float, backup_dir: Path | None = None
) -> DatabaseCheck:
    """:func:`check_database` for one of :func:`managed_databases`; a damaged one is told
    the restore command of the newest backup in ``backup_dir``, when there is one."""
    found = check_database(
        managed.role,
        managed.subject,
        quick=quick,
        busy_timeout_ms=busy_timeout_ms,
        missing_hint=managed.missing_hint,
    )
    if found.status in _DAMAGED and backup_dir is not None:
        from assistant_monitoring.backup import backups_in

        backups = backups_in(backup_dir)
        if backups:
            found.message += (
                f"; the newest backup is {backups[-1]}: `assistant db restore {backups[-1]}`"
            )
        else:
            found.message += f"; no backup in {backup_dir} (`assistant db backup` makes them)"
    return found


def check_database(
    role: str, subject: Subject, *, quick: bool, busy_timeout_ms: float, missing_hint: str
) -> DatabaseCheck:
    """Check one database file (never writes it)."""
    path = subject.path
    found = DatabaseCheck(role, str(path), "ok", "ok")
    problem = refuse_before_open(subject, creating=False)
    if (problem is None or problem.kind == "missing_directory") and not path.exists():
        found.status = "missing"
        found.message = f"{subject.what} {path} does not exist yet: {missing_hint}"
        return found
    if problem is not None:
        return _found(found, problem)
    found.size_bytes = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    found.wal_bytes = wal.stat().st_size if wal.exists() else 0
    try:
        conn = open_read_only(path, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as error:
        return _found(found, diagnose(subject, error, busy_timeout_ms=busy_timeout_ms))
    try:
        pragma = "quick_check" if quick else "integrity_check"
        results = [row[0] for row in conn.execute(f"PRAGMA {pragma}({_PROBLEMS_SHOWN})")]
        if results != ["ok"]:
            damage = sqlite3.DatabaseError(
                f"database disk image is malformed ({'; '.join(results)})"
            )
            return _found(found, diagnose(subject, damage, busy_timeout_ms=busy_timeout_ms))
        found.migrations = applied_migrations(conn)
        found.tables = _tables(conn)
    except sqlite3.Error as error:
        return _found(found, diagnose(subject, error, busy_timeout_ms=busy_timeout_ms))
    finally:
        conn.close()
    writable = _write_problem(subject, busy_timeout_ms)
    return _found(found, writable) if writable is not None else found


def _found(found: DatabaseCheck, problem: Diagnosis) -> DatabaseCheck:
    found.status, found.message = problem.kind, problem.message
    return found


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The schema migrations a database records (none when it was never migrated)."""
    try:
        return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    except sqlite3.OperationalError:  # no such table
        return []


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The database's own tables (SQLite's internal ones aside), by name."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]


def row_count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _tables(conn: sqlite3.Connection) -> list[TableFacts]:
    facts = []
    for name in table_names(conn):
        column = _TIME_COLUMNS.get(name)
        if column is None:
            facts.append(TableFacts(name, row_count(conn, name)))
            continue
        rows, oldest, newest = conn.execute(
            f'SELECT count(*), min("{column}"), max("{column}") FROM "{name}"'
        ).fetchone()
        facts.append(TableFacts(name, int(rows), oldest, newest))
    return facts


def _write_problem(subject: Subject, busy_timeout_ms: float) -> Diagnosis | None:
    """Why a writer could not get in now, or None: takes the write lock, then lets go."""
    try:
        conn = sqlite3.connect(subject.path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    except sqlite3.Error as error:
        return diagnose(subject, error, busy_timeout_ms=busy_timeout_ms)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as error:
        return diagnose(subject, error, busy_timeout_ms=busy_timeout_ms)
    finally:
        conn.close()
    return None
