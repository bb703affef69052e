"""``assistant db check``: what state each database is in, and what to do about it.

For ``assistant.db`` and ``monitoring.db``, without changing a byte of either, of
their ``-wal`` or ``-shm`` (:func:`~assistant_monitoring.sqlitepeek.read_untouched`:
a crashed writer's ``-wal`` is read, never checkpointed):

1. the checks SQLite would not make (:func:`~assistant_monitoring.sqlitefile.refuse_before_open`:
   missing, empty, a directory in the way, a FIFO, a device, a symlink loop, unreadable);
2. ``PRAGMA integrity_check`` (``quick_check`` with ``--quick``): corrupt or truncated,
   said the way every command says it;
3. the schema: a migration this version does not know means a newer version wrote
   it, which ``ask`` refuses, so the check does too;
4. whether a writer could get in, asked without writing: the file system and the
   directory writable, space left, and no other process holding the write lock for
   the whole busy timeout (its lock bytes read with ``fcntl(F_GETLK)``);
5. the facts: size, WAL size, applied migrations, and per table its rows and its
   oldest and newest row (where the table has a time column).

A problem found makes the command exit 1; every database fine, 0.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant_monitoring.inventory import (
    Managed,
    applied_migrations,
    newer_than_known,
    row_count,
    table_names,
)
from assistant_monitoring.sqlitefile import (
    Diagnosis,
    Subject,
    diagnose,
    read_only_reason,
    refuse_before_open,
)
from assistant_monitoring.sqlitepeek import (
    can_ask_locks,
    leftovers_of_checks,
    read_untouched,
    remove_leftover_of_check,
    write_lock_holder,
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
# Less free space than this and SQLite cannot grow the database, its -wal or -shm.
_FULL_BELOW_BYTES = 256 * 1024
_LOCK_POLL_SECONDS = 0.02


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
    status: str  # "ok", "missing", "newer", or a Diagnosis kind ("corrupt", "locked", ...)
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
    """Check one database file (never writes it, its -wal or its -shm)."""
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
    for leftover in leftovers_of_checks(path):  # a killed check's hard links: ours
        remove_leftover_of_check(leftover)
    before = _fingerprint(path)
    problem = _read(found, subject, quick=quick, busy_timeout_ms=busy_timeout_ms)
    if problem is not None and _fingerprint(path) != before:
        # Written while it was read (a process started meanwhile): read it again, as
        # one reader among the writers, before calling it damaged.
        problem = _read(found, subject, quick=quick, busy_timeout_ms=busy_timeout_ms)
    if problem is not None:
        return _found(found, problem)
    newer = newer_than_known(role, found.migrations)
    if newer:
        found.status = "newer"
        found.message = (
            f"{subject.what} {path} was migrated by a newer version of assistant "
            f"({', '.join(newer)}): upgrade assistant; this version refuses to use it"
        )
        return found
    writable = _write_problem(subject, busy_timeout_ms)
    return _found(found, writable) if writable is not None else found


def _fingerprint(path: Path) -> tuple[tuple[int, int] | None, ...]:
    def one(candidate: Path) -> tuple[int, int] | None:
        try:
            info = candidate.stat()
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns

    return tuple(one(path.with_name(path.name + side)) for side in ("", "-wal"))


def _read(
    found: DatabaseCheck, subject: Subject, *, quick: bool, busy_timeout_ms: float
) -> Diagnosis | None:
    """Integrity, migrations and tables into ``found``; the problem, or None."""
    try:
        with read_untouched(subject.path, timeout=busy_timeout_ms / 1000) as conn:
            pragma = "quick_check" if quick else "integrity_check"
            results = [row[0] for row in conn.execute(f"PRAGMA {pragma}({_PROBLEMS_SHOWN})")]
            if results != ["ok"]:
                damage = sqlite3.DatabaseError(
                    f"database disk image is malformed ({'; '.join(results)})"
                )
                return diagnose(subject, damage, busy_timeout_ms=busy_timeout_ms)
            found.migrations = applied_migrations(conn)
            found.tables = _tables(conn)
    except sqlite3.Error as error:
        return diagnose(subject, error, busy_timeout_ms=busy_timeout_ms)
    return None


def _found(found: DatabaseCheck, problem: Diagnosis) -> DatabaseCheck:
    found.status, found.message = problem.kind, problem.message
    return found


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
    """Why a writer could not get in now, or None; asked without writing anything."""
    path = subject.path
    reason = read_only_reason(path)
    if reason is not None:
        return Diagnosis(
            "read_only",
            f"{subject.what} {path} is intact but cannot be written ({reason}): make it "
            "writable (chmod/chown, or remount the disk read-write), or set "
            f"{subject.setting} to a writable path",
        )
    try:
        stats = os.statvfs(path.parent)
        full = stats.f_bavail * stats.f_frsize < _FULL_BELOW_BYTES
    except OSError:
        full = False
    if full:
        return Diagnosis(
            "disk_full",
            f"{subject.what} {path}: the disk is full: free some space "
            f"(`df -h {path.parent}`); the data written so far is intact",
        )
    if not can_ask_locks():
        return _write_problem_by_transaction(subject, busy_timeout_ms)
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while (holder := write_lock_holder(path)) is not None:
        if time.monotonic() >= deadline:
            return Diagnosis(
                "locked",
                f"{subject.what} {path} is locked by another process (pid {holder}, waited "
                f"{busy_timeout_ms:g} ms): let it finish, or find it with `fuser {path}`",
            )
        time.sleep(_LOCK_POLL_SECONDS)  # signal handlers run between the polls
    return None


def _write_problem_by_transaction(subject: Subject, busy_timeout_ms: float) -> Diagnosis | None:
    """Where the lock table cannot be read: take the write lock, then let go.

    (On a crashed writer's ``-wal`` this connection's close checkpoints it: only
    systems without ``F_GETLK`` pay that.)
    """
    from assistant_monitoring.sqlitefile import connect

    try:
        conn = connect(subject.path, busy_timeout_ms=busy_timeout_ms, isolation_level=None)
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
