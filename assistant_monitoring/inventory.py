"""What the ``db`` commands look after: both databases, their migrations, their tables.

Shared by ``db check`` (:mod:`assistant_monitoring.dbcheck`), ``db backup`` and
``db restore`` (:mod:`assistant_monitoring.backup`, :mod:`assistant_monitoring.backupfolder`),
which each need the list of databases and what a version of the assistant knows of
them, and none of which should import the others for it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from assistant_monitoring.schemas import known_migrations as registered_migrations
from assistant_monitoring.sqlitefile import Subject


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


def known_migrations(role: str) -> frozenset[str] | None:
    """The migrations this version knows for a database role (None: nobody said)."""
    if role == "metrics":
        from assistant_monitoring.metrics.store import KNOWN_MIGRATIONS

        return frozenset(KNOWN_MIGRATIONS)
    return registered_migrations(role)


def newer_than_known(role: str, applied: list[str]) -> list[str]:
    """The applied migrations this version does not know: a newer version wrote them."""
    known = known_migrations(role)
    return [] if known is None else sorted(set(applied) - known)


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
