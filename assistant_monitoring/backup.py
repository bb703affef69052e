"""``assistant db backup``: copies that are checked before they are called backups.

A backup is a folder, ``assistant-backup-YYYYmmddTHHMMSSZ``, holding ``assistant.db``,
``monitoring.db`` and ``manifest.json`` (versions, applied migrations, row counts per
table, size and sha256 of each file); see :mod:`~assistant_monitoring.backupfolder`
for what may be trusted in one, and :mod:`~assistant_monitoring.backupdest` for the
destination (its lock, leftovers, pruning). A folder rather than an archive: each
file can be checked, opened or copied with the usual tools, nothing needs unpacking.

**Consistency.** Each database is copied with SQLite's online backup API in one step,
inside one read transaction: in WAL mode that sees one committed state and blocks no
writer, so the copy is exactly the database as of one instant, even while ``monitor
serve`` and eight ``ask`` processes write. (A stepwise backup would restart every time
another connection wrote, and under steady writes might never finish.) The two files
are two such instants, a moment apart: a run recorded in ``monitoring.db`` may
have its conversation one message further on in ``assistant.db``, never a half-written
one in either.

**All or nothing.** Every source is checked before anything is written (a symlink
loop, a FIFO, a lock held past the timeout, a newer schema are refused by name). The
copies are made in a hidden ``.NAME.partial`` folder marked as ours; each copy passes
``PRAGMA quick_check`` (a damaged source is named as such: the online backup copies
pages as they are), is flushed, and its sha256 goes into the manifest, which is read
back and checked against the files; only then is the folder renamed to its final
name, the one step that makes it a backup. Pruning (``--keep``) runs only after that.
A write that fails is blamed on the destination (named, "is full") when it is the
destination that could not be written, and on the source otherwise.

Test hook: ``ASSISTANT_TEST_KILL_AT=backup:K`` (:mod:`~assistant_monitoring.killpoints`)
kills the process at the K-th step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from assistant_monitoring import __version__, killpoints
from assistant_monitoring.backupdest import (
    STEP,
    backups_in,
    clean_leftovers,
    destination_error,
    destination_lock,
    nearly_full,
    prune,
    prune_locked,
    write_mark,
)
from assistant_monitoring.backupfolder import (
    FORMAT,
    MANIFEST,
    PREFIX,
    BackupError,
    FileEntry,
    Manifest,
    check_entries,
    inspect_copy,
    read_manifest,
    verify,
)
from assistant_monitoring.durable import fsync_directory, sha256_of, write_atomically
from assistant_monitoring.inventory import Managed, applied_migrations, newer_than_known
from assistant_monitoring.sqlitefile import (
    Subject,
    diagnose,
    is_valid,
    open_immutable,
    open_read_only,
    refuse_before_open,
)

__all__ = [
    "MANIFEST",
    "PREFIX",
    "BackupError",
    "FileEntry",
    "Made",
    "Manifest",
    "backups_in",
    "make_backup",
    "open_source",
    "present",
    "prune",
    "verify",
]

_WRITE_FAILURES = ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_READONLY")

Progress = Callable[[int, int], None]  # (bytes copied so far, bytes in all)


@dataclass
class Made:
    """What one ``db backup`` run did."""

    folder: Path
    manifest: Manifest
    cleaned: list[Path] = field(default_factory=list)  # left by interrupted runs, removed
    pruned: list[Path] = field(default_factory=list)  # older backups removed by --keep
    left: list[Path] = field(default_factory=list)  # leftover-named, maybe not ours: kept


def stamp(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )


def present(managed: Managed) -> bool:
    """Whether anything is where the database should be (a broken link or loop included)."""
    return os.path.lexists(managed.subject.path)


# -- backup ---------------------------------------------------------------------


def make_backup(
    databases: list[Managed],
    destination: Path,
    *,
    busy_timeout_ms: float,
    keep: int | None = None,
    progress: Progress | None = None,
    now: float | None = None,
) -> Made:
    """A new, checked backup folder in ``destination``; then prune to the newest ``keep``."""
    chosen = [m for m in databases if present(m)]
    if not chosen:
        raise BackupError("nothing to back up: neither database exists yet")
    sources = [open_source(managed, busy_timeout_ms) for managed in chosen]
    try:
        with destination_lock(destination):
            cleaned, left = clean_leftovers(destination)
            folder, manifest = _copy_all(sources, destination, busy_timeout_ms, progress, now)
            made = Made(folder, manifest, cleaned, left=left)
            if keep is not None:
                made.pruned = prune_locked(destination, keep, made=folder)
    finally:
        for _, conn in sources:
            conn.close()
    return made


def open_source(managed: Managed, busy_timeout_ms: float) -> tuple[Managed, sqlite3.Connection]:
    """A read-only connection to a source, once it is known to be one we may copy."""
    subject = managed.subject
    problem = refuse_before_open(subject, creating=False)
    if problem is not None:
        raise BackupError(problem.message)
    try:
        conn = open_read_only(subject.path, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as error:
        raise BackupError(
            diagnose(subject, error, busy_timeout_ms=busy_timeout_ms).message
        ) from None
    try:
        newer = newer_than_known(managed.role, applied_migrations(conn))
    except sqlite3.Error as error:
        conn.close()
        raise BackupError(
            diagnose(subject, error, busy_timeout_ms=busy_timeout_ms).message
        ) from None
    if newer:
        conn.close()
        raise BackupError(
            f"{subject.what} {subject.path} was migrated by a newer version of assistant "
            f"({', '.join(newer)}): upgrade assistant to back it up"
        )
    return managed, conn


def _copy_all(
    sources: list[tuple[Managed, sqlite3.Connection]],
    destination: Path,
    busy_timeout_ms: float,
    progress: Progress | None,
    now: float | None,
) -> tuple[Path, Manifest]:
    name = _free_name(destination, stamp(now))
    partial = destination / f".{name}.partial"
    try:
        partial.mkdir()
        write_mark(partial, name)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise destination_error(destination, error) from None
    killpoints.reached(STEP)
    total = sum(managed.subject.path.stat().st_size for managed, _ in sources)
    done = 0
    manifest = Manifest(
        FORMAT, __version__, datetime.now(UTC).isoformat(timespec="seconds"), name=name
    )
    try:
        for managed, conn in sources:
            target = partial / managed.file_name

            def report(copied: int, before: int = done) -> None:
                if progress is not None:
                    progress(before + copied, total)

            _copy_online(managed, conn, target, destination, busy_timeout_ms, report)
            done += managed.subject.path.stat().st_size
            manifest.files.append(_checked_entry(managed, target, destination))
            killpoints.reached(STEP)
        try:
            write_atomically(partial / MANIFEST, manifest.encode())
        except OSError as error:
            raise destination_error(destination, error) from None
        # Read the manifest back: what restore will read must be what was meant. (Each
        # sha256 was taken from the flushed copy, after its check: not read a third time.)
        written = read_manifest(partial)
        check_entries(partial, written)
        if written.as_json() != manifest.as_json():
            raise BackupError(
                f"{partial / MANIFEST} does not read back as written: the destination disk "
                "may be failing; nothing was backed up"
            )
        killpoints.reached(STEP)
        folder = destination / name
        os.rename(partial, folder)  # the one step that makes it a backup
        fsync_directory(destination)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    killpoints.reached(STEP)
    return folder, manifest


def _free_name(destination: Path, when: str) -> str:
    """``assistant-backup-STAMP``, or ``-2``, ``-3``... when that second is taken."""
    number = 1
    while True:
        name = f"{PREFIX}{when}" + (f"-{number}" if number > 1 else "")
        if not any(
            os.path.lexists(destination / candidate)
            for candidate in (name, f".{name}.partial", f".{name}.deleting")
        ):
            return name
        number += 1


def _copy_online(
    managed: Managed,
    source: sqlite3.Connection,
    target: Path,
    destination: Path,
    busy_timeout_ms: float,
    progress: Callable[[int], None],
) -> None:
    try:
        copy = sqlite3.connect(target)
    except sqlite3.Error as error:
        raise destination_error(destination, error) from None
    try:
        # One step (pages=-1): one read transaction, so one instant of the source.
        # Progress comes from the copy's size as it grows, watched by the caller's bar.
        watcher = _SizeWatcher(target, progress)
        watcher.start()
        try:
            source.backup(copy, pages=-1)
        finally:
            watcher.stop()
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    except sqlite3.Error as error:
        raise _copy_error(managed.subject, destination, error, busy_timeout_ms) from None
    finally:
        copy.close()
    try:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise destination_error(destination, error) from None


def _checked_entry(managed: Managed, target: Path, destination: Path) -> FileEntry:
    """The manifest entry of a copy, once the copy passed ``quick_check``."""
    problem, _, migrations = inspect_copy(target, quick=True)
    if problem is not None:
        subject = managed.subject
        if is_valid(subject.path) is False:
            damage = sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
            found = diagnose(subject, damage, busy_timeout_ms=1000)
            raise BackupError(
                f"{found.message} (not backed up; the backups in {destination} were left as "
                "they were)"
            )
        raise BackupError(
            f"the copy of {subject.what} in {destination} failed its check ({problem}): the "
            "destination disk may be failing; nothing was backed up"
        )
    return FileEntry(
        managed.role,
        managed.file_name,
        target.stat().st_size,
        sha256_of(target),
        sorted(migrations),
        _rows(target),
        "quick_check ok",
    )


def _rows(path: Path) -> dict[str, int]:
    from assistant_monitoring.inventory import row_count, table_names

    conn = open_immutable(path)  # our own copy: nothing else writes it
    try:
        return {table: row_count(conn, table) for table in table_names(conn)}
    finally:
        conn.close()


def _copy_error(
    subject: Subject, destination: Path, error: sqlite3.Error, busy_timeout_ms: float
) -> BackupError:
    """Whose fault a failed copy is: the destination's (it cannot be written) or the source's."""
    code = str(getattr(error, "sqlite_errorname", "") or "")
    if code.startswith(_WRITE_FAILURES) or "disk is full" in str(error) or nearly_full(destination):
        return destination_error(destination, error)
    return BackupError(diagnose(subject, error, busy_timeout_ms=busy_timeout_ms).message)


class _SizeWatcher:
    """Report a growing file's size every 0.2 s (the backup API has no progress in one step)."""

    def __init__(self, path: Path, report: Callable[[int], None]) -> None:
        import threading

        self.path = path
        self.report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._tell()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._tell()

    def _tell(self) -> None:
        with contextlib.suppress(OSError):
            self.report(self.path.stat().st_size)
