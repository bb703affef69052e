"""``assistant db backup|restore|vacuum``: copies that can be trusted, restores that lose nothing.

A backup is a folder, ``assistant-backup-YYYYmmddTHHMMSSZ``, holding ``assistant.db``,
``monitoring.db`` and ``manifest.json`` (versions, applied migrations, row counts per
table, size and sha256 of each file). A folder rather than an archive: each file can
be checked, opened or copied with the usual tools, and nothing needs unpacking.

**Consistency.** Each database is copied with SQLite's online backup API in one step,
inside one read transaction: in WAL mode that sees one committed state and blocks no
writer, so the copy is exactly the database as of one instant, even while ``monitor
serve`` and eight ``ask`` processes write. (A stepwise backup would restart every time
another connection wrote, and under steady writes might never finish.) The two files
are two such instants, a moment apart: a run recorded in ``monitoring.db`` may
have its conversation one message further on in ``assistant.db``, never a half-written
one in either.

**Restore** verifies before it touches anything: the manifest, every file's sha256,
and ``PRAGMA integrity_check`` on each copy. It refuses while another process has a
database open (``/proc/*/fd``), unless forced; then moves each current file (and its
``-wal`` and ``-shm``) aside as ``NAME.before-restore-STAMP`` (never deleting them),
puts the backup's copy in place (written beside it, then renamed), and lets the
normal open path apply pending migrations.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant_monitoring import __version__
from assistant_monitoring.dbcheck import Managed, applied_migrations, row_count, table_names
from assistant_monitoring.errors import MonitoringError
from assistant_monitoring.sqlitefile import diagnose, is_valid, open_read_only, refuse_before_open

PREFIX = "assistant-backup-"
MANIFEST = "manifest.json"
_FORMAT = 1
_SIDE_FILES = ("-wal", "-shm", "-journal")

Progress = Callable[[int, int], None]  # (bytes copied so far, bytes in all)


class BackupError(MonitoringError):
    """A backup could not be made, verified or restored (exit 1)."""

    exit_code = 1


@dataclass
class FileEntry:
    """One database in a backup."""

    role: str
    name: str
    bytes: int
    sha256: str
    migrations: list[str]
    rows: dict[str, int]


@dataclass
class Manifest:
    """What ``manifest.json`` says."""

    format: int
    version: str
    created_at: str
    files: list[FileEntry] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "created_at": self.created_at,
            "files": [entry.__dict__ for entry in self.files],
        }

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            document = json.loads(path.read_text())
            files = [FileEntry(**entry) for entry in document["files"]]
            return cls(document["format"], document["version"], document["created_at"], files)
        except FileNotFoundError:
            raise BackupError(f"{folder} is not a backup: it has no {MANIFEST}") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BackupError(f"{path} cannot be read ({error}): the backup is damaged") from None


def stamp(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _facts(path: Path) -> tuple[list[str], dict[str, int]]:
    """(applied migrations, rows per table) of a copy, for its manifest."""
    conn = open_read_only(path, timeout=5)
    try:
        return applied_migrations(conn), {t: row_count(conn, t) for t in table_names(conn)}
    finally:
        conn.close()


# -- backup ---------------------------------------------------------------------


def make_backup(
    databases: list[Managed],
    destination: Path,
    *,
    busy_timeout_ms: float,
    keep: int | None = None,
    progress: Progress | None = None,
    now: float | None = None,
) -> tuple[Path, Manifest]:
    """A new backup folder in ``destination``; then prune to the newest ``keep``."""
    present = [m for m in databases if m.subject.path.exists()]
    if not present:
        raise BackupError("nothing to back up: neither database exists yet")
    for managed in present:
        problem = refuse_before_open(managed.subject, creating=False)
        if problem is not None:
            raise BackupError(problem.message)
    folder = destination / f"{PREFIX}{stamp(now)}"
    if folder.exists():
        raise BackupError(f"{folder} exists already: wait a second and run it again")
    partial = destination / f".{folder.name}.partial"
    try:
        partial.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise BackupError(
            f"{partial} exists: another backup is under way (or was cut off: remove it)"
        ) from None
    except OSError as error:
        raise BackupError(
            f"cannot write to {destination} ({error.strerror}): choose another DEST"
        ) from None
    total = sum(m.subject.path.stat().st_size for m in present)
    done = 0
    manifest = Manifest(_FORMAT, __version__, datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        for managed in present:
            target = partial / managed.file_name

            def report(copied: int, before: int = done) -> None:
                if progress is not None:
                    progress(before + copied, total)

            _copy_online(managed, target, busy_timeout_ms, report)
            done += managed.subject.path.stat().st_size
            migrations, rows = _facts(target)
            manifest.files.append(
                FileEntry(
                    managed.role,
                    managed.file_name,
                    target.stat().st_size,
                    sha256(target),
                    migrations,
                    rows,
                )
            )
        (partial / MANIFEST).write_text(json.dumps(manifest.as_json(), indent=2) + "\n")
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if keep is not None:
        prune(destination, keep)
    return folder, manifest


def _copy_online(
    managed: Managed, target: Path, busy_timeout_ms: float, progress: Callable[[int], None]
) -> None:
    source_path = managed.subject.path
    try:
        source = open_read_only(source_path, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as error:
        raise BackupError(
            diagnose(managed.subject, error, busy_timeout_ms=busy_timeout_ms).message
        ) from None
    copy = sqlite3.connect(target)
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
        raise BackupError(
            diagnose(managed.subject, error, busy_timeout_ms=busy_timeout_ms).message
        ) from None
    finally:
        copy.close()
        source.close()


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


def backups_in(destination: Path) -> list[Path]:
    """The backups in ``destination``, oldest first (their names sort by time)."""
    if not destination.is_dir():
        return []
    return sorted(
        p
        for p in destination.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / MANIFEST).exists()
    )


def prune(destination: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` backups in ``destination``; returns the removed."""
    old = backups_in(destination)[:-keep] if keep > 0 else backups_in(destination)
    for folder in old:
        shutil.rmtree(folder)
    return old


# -- verify and restore ---------------------------------------------------------------


def verify(folder: Path) -> Manifest:
    """The manifest, once every file's size, sha256 and integrity check agree with it."""
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a backup folder (make one with `assistant db backup`)")
    manifest = Manifest.read(folder)
    if manifest.format > _FORMAT:
        raise BackupError(
            f"{folder} was made by a newer assistant ({manifest.version}): upgrade to restore it"
        )
    for entry in manifest.files:
        path = folder / entry.name
        if not path.is_file():
            raise BackupError(f"{folder} is incomplete: {entry.name} is missing")
        if path.stat().st_size != entry.bytes or sha256(path) != entry.sha256:
            raise BackupError(
                f"{path} does not match the manifest (sha256 differs): the backup was altered "
                "or damaged; nothing was restored"
            )
        try:
            conn = open_read_only(path, timeout=5)
            try:
                result = conn.execute("PRAGMA integrity_check(5)").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as error:
            raise BackupError(
                f"{path} is not a usable database ({error}): nothing was restored"
            ) from None
        if [r[0] for r in result] != ["ok"]:
            raise BackupError(f"{path} fails its integrity check: nothing was restored")
    return manifest


def holders(path: Path) -> list[int]:
    """Pids of the processes (this one aside) that have ``path`` open (Linux /proc)."""
    found: list[int] = []
    if not Path("/proc/self/fd").is_dir():
        return found  # not Linux: nothing to ask (restore then relies on --force care)
    names = {str(path.resolve()), *(str(path.resolve()) + side for side in _SIDE_FILES)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in names:
                    found.append(int(entry.name))
                    break
        except OSError:
            continue
    return sorted(found)


@dataclass
class Restored:
    role: str
    path: str
    moved_aside: list[str]


def restore(
    folder: Path, databases: list[Managed], *, force: bool = False, now: float | None = None
) -> tuple[Manifest, list[Restored]]:
    """Verify ``folder``, then put its databases in place of the current ones."""
    manifest = verify(folder)
    by_role = {m.role: m for m in databases}
    unknown = [e.role for e in manifest.files if e.role not in by_role]
    if unknown:
        raise BackupError(f"{folder} holds a database this version does not know ({unknown[0]})")
    targets = [(entry, by_role[entry.role]) for entry in manifest.files]
    if not force:
        for _, managed in targets:
            busy = holders(managed.subject.path)
            if busy:
                raise BackupError(
                    f"{managed.subject.path} is open in process {', '.join(map(str, busy))} "
                    "(monitor serve? an ask?): stop it first, or pass --force"
                )
    suffix = f".before-restore-{stamp(now)}"
    done: list[Restored] = []
    for entry, managed in targets:
        path = managed.subject.path
        path.parent.mkdir(parents=True, exist_ok=True)
        incoming = path.with_name(f".{path.name}.restoring")
        shutil.copyfile(folder / entry.name, incoming)
        moved = []
        for side in ("", *_SIDE_FILES):
            current = Path(str(path) + side)
            if current.exists():
                aside = Path(str(path) + side + suffix)
                current.rename(aside)
                moved.append(str(aside))
        incoming.rename(path)
        done.append(Restored(entry.role, str(path), moved))
    return manifest, done


# -- vacuum ------------------------------------------------------------------------


def vacuum(managed: Managed, *, busy_timeout_ms: float) -> tuple[int, int]:
    """Compact one database (and make its free pages returnable from then on):
    (bytes before, bytes after)."""
    path = managed.subject.path
    problem = refuse_before_open(managed.subject, creating=False)
    if problem is not None:
        raise BackupError(problem.message)
    if is_valid(path) is False:  # a damaged file is never written, not even compacted
        error = sqlite3.DatabaseError("database disk image is malformed")
        raise BackupError(diagnose(managed.subject, error, busy_timeout_ms=busy_timeout_ms).message)
    before = path.stat().st_size
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
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
