"""``assistant db vacuum``: compact both databases, after checking both.

A damaged file is never written, not even compacted; a database from a newer
version, or something that is no database file (a FIFO, a symlink loop), is refused
by name. Both are checked before either is compacted, so a refusal changes nothing.
"""

from __future__ import annotations

import sqlite3

from assistant_monitoring.backup import open_source, present
from assistant_monitoring.backupfolder import BackupError
from assistant_monitoring.inventory import Managed
from assistant_monitoring.sqlitefile import connect, diagnose, is_valid, refuse_before_open

__all__ = ["vacuum", "vacuum_all"]


def vacuum_all(
    databases: list[Managed], *, busy_timeout_ms: float
) -> list[tuple[Managed, int, int]]:
    """Check every database there, then compact each: (database, bytes before, after).

    All are checked before any is compacted: a refusal changes nothing.
    """
    chosen = [m for m in databases if present(m)]
    for managed in chosen:
        _refuse_to_vacuum(managed, busy_timeout_ms)
    return [(m, *_compact(m, busy_timeout_ms)) for m in chosen]


def _refuse_to_vacuum(managed: Managed, busy_timeout_ms: float) -> None:
    subject = managed.subject
    problem = refuse_before_open(subject, creating=False)
    if problem is not None:
        raise BackupError(problem.message)
    if is_valid(subject.path) is False:  # a damaged file is never written, not even compacted
        error = sqlite3.DatabaseError("database disk image is malformed")
        raise BackupError(diagnose(subject, error, busy_timeout_ms=busy_timeout_ms).message)
    _, conn = open_source(managed, busy_timeout_ms)  # refuses a newer schema
    conn.close()


def vacuum(managed: Managed, *, busy_timeout_ms: float) -> tuple[int, int]:
    """Compact one database (and make its free pages returnable from then on):
    (bytes before, bytes after)."""
    _refuse_to_vacuum(managed, busy_timeout_ms)
    return _compact(managed, busy_timeout_ms)


def _compact(managed: Managed, busy_timeout_ms: float) -> tuple[int, int]:
    path = managed.subject.path
    before = path.stat().st_size
    try:
        # A patient connection: the one documented lock wait, in slices signals can cut.
        conn = connect(path, busy_timeout_ms=busy_timeout_ms, isolation_level=None)
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect with the VACUUM
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise BackupError(
            diagnose(managed.subject, error, busy_timeout_ms=busy_timeout_ms).message
        ) from None
    return before, path.stat().st_size
