"""``assistant db backup|vacuum``: copies that are checked before they are called backups.

A backup is a folder, ``assistant-backup-YYYYmmddTHHMMSSZ``, holding ``assistant.db``,
``monitoring.db`` and ``manifest.json`` (versions, applied migrations, row counts per
table, size and sha256 of each file); see :mod:`~assistant_monitoring.backupfolder`
for what may be trusted in one. A folder rather than an archive: each file can be
checked, opened or copied with the usual tools, and nothing needs unpacking.

**Consistency.** Each database is copied with SQLite's online backup API in one step,
inside one read transaction: in WAL mode that sees one committed state and blocks no
writer, so the copy is exactly the database as of one instant, even while ``monitor
serve`` and eight ``ask`` processes write. (A stepwise backup would restart every time
another connection wrote, and under steady writes might never finish.) The two files
are two such instants, a moment apart: a run recorded in ``monitoring.db`` may
have its conversation one message further on in ``assistant.db``, never a half-written
one in either.

**All or nothing.** Every source is checked before anything is written (a symlink
loop, a FIFO, a newer schema are refused by name). The copies are made in a hidden
``.NAME.partial`` folder marked as ours; each copy passes ``PRAGMA quick_check``
(a damaged source is named as such: the online backup copies pages as they are),
is flushed, and its sha256 goes into the manifest, which is read back; only then is
the folder renamed to its final name, which is the one step that makes it a backup.
Pruning (``--keep``) runs only after that, never removes the backup just made, and
removes only what :func:`~assistant_monitoring.backupfolder.ours` recognises, each
by renaming it to ``.NAME.deleting`` first, so a kill never leaves half a backup under
a backup's name. One run at a time per destination (a lock file in it); each run
first removes what an interrupted run left (``.partial``/``.deleting`` folders
holding our mark, or empty), and says so.

Test hook: ``ASSISTANT_TEST_KILL_AT=backup:K`` (:mod:`~assistant_monitoring.killpoints`)
kills the process at the K-th step.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from assistant_monitoring import __version__, killpoints
from assistant_monitoring.backupfolder import (
    FORMAT,
    MANIFEST,
    MARK,
    NAME_PATTERN,
    PREFIX,
    BackupError,
    FileEntry,
    Manifest,
    inspect_copy,
    is_leftover_name,
    ours,
    sort_key,
    verify,
    verify_contents,
)
from assistant_monitoring.dbcheck import Managed, applied_migrations, newer_than_known
from assistant_monitoring.durable import (
    NO_SPACE_ERRNOS,
    DirectoryBusy,
    directory_lock,
    free_bytes,
    fsync_directory,
    sha256_of,
    write_atomically,
)
from assistant_monitoring.sqlitefile import (
    Subject,
    connect,
    diagnose,
    is_valid,
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
    "prune",
    "vacuum",
    "vacuum_all",
    "verify",
]

_STEP = "backup"
# Below this, SQLite cannot grow a copy: a failed write there is a full destination.
_FULL_BELOW_BYTES = 256 * 1024
_WRITE_FAILURES = ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_READONLY")

Progress = Callable[[int, int], None]  # (bytes copied so far, bytes in all)


@dataclass
class Made:
    """What one ``db backup`` run did."""

    folder: Path
    manifest: Manifest
    cleaned: list[Path] = field(default_factory=list)  # left by interrupted runs, removed
    pruned: list[Path] = field(default_factory=list)  # older backups removed by --keep


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
    sources = [_open_source(managed, busy_timeout_ms) for managed in chosen]
    try:
        with _destination_lock(destination):
            cleaned = _clean_leftovers(destination)
            folder, manifest = _copy_all(sources, destination, busy_timeout_ms, progress, now)
            made = Made(folder, manifest, cleaned)
            if keep is not None:
                made.pruned = _prune_locked(destination, keep, made=folder)
    finally:
        for _, conn in sources:
            conn.close()
    return made


def _open_source(managed: Managed, busy_timeout_ms: float) -> tuple[Managed, sqlite3.Connection]:
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
        _write_mark(partial, name)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise _destination_error(destination, error) from None
    killpoints.reached(_STEP)
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
            killpoints.reached(_STEP)
        try:
            write_atomically(partial / MANIFEST, manifest.encode())
        except OSError as error:
            raise _destination_error(destination, error) from None
        # Read back what was written: the manifest, and each file against its sha256.
        manifest = verify_contents(partial, integrity=False)
        killpoints.reached(_STEP)
        folder = destination / name
        os.rename(partial, folder)  # the one step that makes it a backup
        fsync_directory(destination)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    killpoints.reached(_STEP)
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


def _write_mark(folder: Path, name: str) -> None:
    """The mark that says "made by db backup": a leftover holding it is ours to clean."""
    document = {"made_by": "assistant db backup", "name": name, "pid": os.getpid()}
    with (folder / MARK).open("x") as handle:
        handle.write(json.dumps(document) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


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
        raise _destination_error(destination, error) from None
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
        raise _destination_error(destination, error) from None


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
    from assistant_monitoring.dbcheck import row_count, table_names

    uri = "file:" + str(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    try:
        return {table: row_count(conn, table) for table in table_names(conn)}
    finally:
        conn.close()


def _copy_error(
    subject: Subject, destination: Path, error: sqlite3.Error, busy_timeout_ms: float
) -> BackupError:
    """Whose fault a failed copy is: the destination's (it cannot be written) or the source's."""
    code = str(getattr(error, "sqlite_errorname", "") or "")
    if (
        code.startswith(_WRITE_FAILURES)
        or "disk is full" in str(error)
        or _nearly_full(destination)
    ):
        return _destination_error(destination, error)
    return BackupError(diagnose(subject, error, busy_timeout_ms=busy_timeout_ms).message)


def _nearly_full(directory: Path) -> bool:
    try:
        return free_bytes(directory) < _FULL_BELOW_BYTES
    except OSError:
        return False


def _destination_error(destination: Path, error: OSError | sqlite3.Error) -> BackupError:
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    full = (
        (isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS)
        or "full" in str(error)
        or _nearly_full(destination)
    )
    if full:
        return BackupError(
            f"the backup destination {destination} is full ({detail}): free some space there "
            f"(`df -h {destination}`) or choose another DEST; nothing was backed up and no "
            "backup was removed"
        )
    return BackupError(
        f"cannot write to the backup destination {destination} ({detail}): choose another DEST; "
        "nothing was backed up"
    )


@contextlib.contextmanager
def _destination_lock(destination: Path) -> Iterator[None]:
    """One run at a time in ``destination``: the others refuse at once (a cron overlap)."""
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BackupError(f"{destination} is not a directory: choose another DEST") from None
    except OSError as error:
        if error.errno == errno.ENOTDIR:
            raise BackupError(f"{destination} is not a directory: choose another DEST") from None
        raise _destination_error(destination, error) from None
    try:
        with directory_lock(destination):
            yield
    except DirectoryBusy:
        raise BackupError(
            f"another backup is writing to {destination} now: let it finish, then run this again"
        ) from None


def _clean_leftovers(destination: Path) -> list[Path]:
    """Remove what interrupted runs left in ``destination``: only ours (see the module doc)."""
    cleaned = []
    for entry in sorted(destination.iterdir()):
        if not is_leftover_name(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        contents = list(entry.iterdir())
        if contents and not (entry / MARK).is_file():
            continue  # a name like ours, but not made by us
        if any(child.is_dir() and not child.is_symlink() for child in contents):
            continue  # we only ever put files there
        try:
            _empty_and_remove(entry)
        except OSError as error:
            raise _destination_error(destination, error) from None
        cleaned.append(entry)
    if cleaned:
        fsync_directory(destination)
    return cleaned


def _empty_and_remove(folder: Path) -> None:
    # The mark goes last: until the folder is gone, a kill leaves it recognisably ours.
    for child in folder.iterdir():
        if child.name != MARK:
            child.unlink()
    (folder / MARK).unlink(missing_ok=True)
    folder.rmdir()


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


# -- which backups there are, and pruning ------------------------------------------------


def backups_in(destination: Path) -> list[Path]:
    """The backups in ``destination`` made by this tool and still whole, oldest first.

    "Whole" as far as a look can tell (name, manifest, contents): restore and verify
    check sha256 and integrity too.
    """
    if not destination.is_dir():
        return []
    try:
        candidates = [p for p in destination.iterdir() if NAME_PATTERN.fullmatch(p.name)]
    except OSError:
        return []
    return sorted((p for p in candidates if ours(p) is not None), key=sort_key)


def prune(destination: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` of our backups in ``destination``; the removed."""
    with _destination_lock(destination):
        return _prune_locked(destination, keep, made=None)


def _prune_locked(destination: Path, keep: int, *, made: Path | None) -> list[Path]:
    others = [p for p in backups_in(destination) if p != made]
    room = max(keep - (1 if made is not None else 0), 0)
    old = others[: len(others) - room] if room else others
    removed = []
    for folder in old:
        if made is not None and sort_key(folder) > sort_key(made):
            continue  # newer than this run's (a clock set back): never the reason to lose it
        try:
            _remove_backup(destination, folder)
        except OSError as error:
            raise BackupError(
                f"could not remove the old backup {folder} ({error.strerror}); the new one is whole"
            ) from None
        removed.append(folder)
    return removed


def _remove_backup(destination: Path, folder: Path) -> None:
    """Remove one of our backups so that a kill never leaves half of one under its name."""
    if not (folder / MARK).exists():  # backups made before the mark existed
        _write_mark(folder, folder.name)
    deleting = destination / f".{folder.name}.deleting"
    os.rename(folder, deleting)
    fsync_directory(destination)
    killpoints.reached(_STEP)
    _empty_and_remove(deleting)
    killpoints.reached(_STEP)


# -- vacuum ------------------------------------------------------------------------


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
    _, conn = _open_source(managed, busy_timeout_ms)  # refuses a newer schema
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
