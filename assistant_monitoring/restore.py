"""``assistant db restore``: everything checked first, then swapped under a journal.

**Check first.** Before any live file is touched: the backup folder is verified whole
(:func:`~assistant_monitoring.backupfolder.verify`: manifest shape and size cap, file
names inside the folder, each role once, sha256, integrity, tables of the role, no
migration this version does not know); each database's place must be usable (a
symlink loop, a FIFO or a directory there is refused); no other process may have a
database open (``/proc/*/fd``, unless ``--force``); each directory must be writable
and hold both copies with room to spare (the current files are kept, not replaced,
so they free nothing).

**Then swap, under a journal.** ``DATA_DIR/.restore-journal.json`` (written
atomically, flushed) lists, per database, the file to replace, the copy being
staged beside it (``.NAME.restoring-STAMP``), and the name the current file is kept
under. The steps:

1. journal ``staging``; copy each backup file beside its target, flushed, its sha256
   checked again: a full disk or a kill here leaves the live files untouched, and the
   copies are removed (by this run when it can, else by the next command);
2. journal ``swapping``; for each database move its ``-journal``, ``-wal``, ``-shm``
   and the file itself aside as ``NAME.before-restore-STAMP`` (``-wal``, ``-shm``
   appended after the stamp, which is where SQLite looks for them: a kept copy opened
   alone has every committed transaction), then rename the staged copy into place;
3. remove the journal. Pending migrations are applied afterwards by the normal open.

Every step is a rename or a check of what is there, so rerunning from any point does
the right thing. A process killed mid-way leaves the journal; the next command that
reads the settings (:meth:`~assistant_monitoring.cli.state.CliState.load`, so before
any database is opened) calls :func:`finish_interrupted`: in ``staging`` it rolls
back (nothing had changed yet), in ``swapping`` it finishes (every staged copy was
checked before the journal said so; if one is no longer whole it rolls back instead,
putting the kept files back). Either way both databases come from one moment: both
the backup's, or both the old ones. A ``.restore.lock`` (``flock``) in the data
directory keeps two restores, or a restore and a recovery, from running at once.

A symlinked ``DATABASE_PATH`` (or ``MONITORING_DB_PATH``) stays a symlink: the
restored file goes where it points, and the current one is kept beside it there, as
SQLite itself puts ``-wal`` and ``-shm`` beside the file a link points to.

Test hook: ``ASSISTANT_TEST_KILL_AT=restore:K`` (:mod:`~assistant_monitoring.killpoints`)
kills the process at the K-th step.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from assistant_monitoring import killpoints
from assistant_monitoring.backupfolder import BackupError, FileEntry, Manifest, verify
from assistant_monitoring.durable import NO_SPACE_ERRNOS, copy_durably, free_bytes, fsync_directory
from assistant_monitoring.inventory import Managed
from assistant_monitoring.restorejournal import (
    JOURNAL_NAME,
    SIDES,
    STEP,
    Journal,
    RestoreJournalError,
    Swap,
    finish_interrupted,
    finish_locked,
    forward,
    remove_journal,
    restore_lock,
    roll_back,
    write_journal,
)
from assistant_monitoring.sqlitefile import read_only_reason, refuse_before_open

__all__ = [
    "JOURNAL_NAME",
    "Restored",
    "finish_interrupted",
    "holders",
    "restore",
]

_MARGIN_BYTES = 1 << 20  # room left over: SQLite grows -wal and -shm once it opens them
_REFUSED_PLACES = ("not_a_file", "is_a_directory", "not_a_directory")


@dataclass
class Restored:
    """One database put in place."""

    role: str
    path: str  # the file restored (where a symlinked setting points)
    moved_aside: list[str]  # the kept files: the database first, then its -wal, -shm
    link: str | None = None  # the setting's path, when it is a symlink to ``path``


def stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


# -- restore --------------------------------------------------------------------------


def restore(
    folder: Path,
    databases: list[Managed],
    *,
    data_dir: Path,
    force: bool = False,
    now: float | None = None,
) -> tuple[Manifest, list[Restored]]:
    """Verify ``folder``, then put its databases in place of the current ones (kept aside)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with restore_lock(data_dir, wait_ms=0):
        # A journal another run left: finish it first.
        finish_locked(data_dir, targets=[managed.subject.path for managed in databases])
        try:
            manifest = verify(folder)
        except BackupError as error:
            raise BackupError(f"{error}; nothing was restored") from None
        journal = _plan(folder, manifest, databases, force=force, now=now)
        try:
            write_journal(data_dir, journal)
        except OSError as error:
            raise _staging_error(data_dir, error) from None
        killpoints.reached(STEP)
        try:
            _stage(folder, manifest, journal)
            journal.state = "swapping"
            write_journal(data_dir, journal)
        except BaseException as error:
            # Nothing live was touched yet: remove the copies, and say why (Ctrl-C too).
            journal.state = "staging"
            roll_back(journal)
            remove_journal(data_dir)
            if isinstance(error, OSError):
                raise _staging_error(data_dir, error) from None
            raise
        killpoints.reached(STEP)
        try:
            forward(journal)
        except (OSError, BackupError, RestoreJournalError) as error:
            raise _undo_after(data_dir, journal, error) from None
        remove_journal(data_dir)
        killpoints.reached(STEP)
    return manifest, [_restored(swap) for swap in journal.swaps]


def _plan(
    folder: Path, manifest: Manifest, databases: list[Managed], *, force: bool, now: float | None
) -> Journal:
    """The journal of this restore, once every place it will write is known to be usable."""
    by_role = {managed.role: managed for managed in databases}
    places: list[tuple[FileEntry, Managed, Path, bool]] = []
    for entry in manifest.files:
        managed = by_role.get(entry.role)
        if managed is None:
            raise BackupError(f"{folder} holds a database this run does not manage ({entry.role})")
        target, link = _place_of(managed)
        places.append((entry, managed, target, link))
    targets = [target for _, _, target, _ in places]
    if len(set(targets)) != len(targets):
        raise BackupError(
            "DATABASE_PATH and MONITORING_DB_PATH are the same file: fix one; nothing was restored"
        )
    if not force:
        for target in targets:
            busy = holders(target)
            if busy:
                raise BackupError(
                    f"{target} is open in process {', '.join(map(str, busy))} "
                    "(monitor serve? an ask?): stop it first, or pass --force"
                )
    for _, _, target, _ in places:
        reason = read_only_reason(target)
        if reason is not None and target.parent.exists():
            raise BackupError(
                f"cannot restore into {target.parent} ({reason}); nothing was restored"
            )
    _check_room([(target, entry.bytes) for entry, _, target, _ in places])
    when = stamp(now)
    number = 1
    while True:
        suffix = when if number == 1 else f"{when}-{number}"
        swaps = [
            Swap(
                entry.role,
                str(target),
                str(target.with_name(f".{target.name}.restoring-{suffix}")),
                str(target.with_name(f"{target.name}.before-restore-{suffix}")),
                os.path.lexists(target),
                entry.sha256,
                entry.bytes,
                str(managed.subject.path) if link else None,
            )
            for entry, managed, target, link in places
        ]
        taken = [
            name
            for swap in swaps
            for name in (swap.incoming, *(swap.aside + side for side in ("", *SIDES)))
            if os.path.lexists(name)
        ]
        if not taken:
            return Journal(str(folder), manifest.created_at, "staging", swaps, os.getpid())
        number += 1


def _place_of(managed: Managed) -> tuple[Path, bool]:
    """(the file to replace, whether the setting is a symlink to it)."""
    subject = managed.subject
    problem = refuse_before_open(subject, creating=True)
    if problem is not None and problem.kind in _REFUSED_PLACES:
        raise BackupError(f"{problem.message}; nothing was restored")
    if subject.path.is_symlink():
        # Restore where it points (where SQLite keeps its -wal too): the link stays.
        return Path(os.path.realpath(subject.path)), True
    return subject.path, False


def _check_room(needs: list[tuple[Path, int]]) -> None:
    """Refuse unless each file system can hold its staged copies, with room to spare."""
    by_device: dict[int, tuple[Path, int]] = {}
    for target, size in needs:
        directory = _existing_parent(target)
        device = os.stat(directory).st_dev
        _, total = by_device.get(device, (directory, 0))
        by_device[device] = (directory, total + size)
    for directory, total in by_device.values():
        need = total + _MARGIN_BYTES
        free = free_bytes(directory)
        if free < need:
            raise BackupError(
                f"not enough free space in {directory} to restore: {need / 2**20:.1f} MiB "
                f"needed, {free / 2**20:.1f} MiB free (the current files are kept, not "
                f"replaced); free some space (`df -h {directory}`); nothing was restored"
            )


def _existing_parent(path: Path) -> Path:
    for candidate in path.parents:
        if candidate.exists():
            return candidate
    return Path("/")


def _stage(folder: Path, manifest: Manifest, journal: Journal) -> None:
    """Each backup file copied beside its target, flushed, and checked again."""
    names = {entry.role: entry.name for entry in manifest.files}
    for swap in journal.swaps:
        target, incoming = Path(swap.target), Path(swap.incoming)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            copied, digest = copy_durably(folder / names[swap.role], incoming)
        except OSError as error:
            error.filename = error.filename or str(incoming)  # a failed write names no file
            raise
        if (copied, digest) != (swap.bytes, swap.sha256):
            raise BackupError(
                f"the copy written to {incoming} differs from the backup (a failing disk?): "
                "nothing was changed"
            )
        if swap.had_main:
            with contextlib.suppress(OSError):  # the restored file keeps the file's mode
                os.chmod(incoming, stat.S_IMODE(os.stat(target).st_mode))
        fsync_directory(target.parent)
        killpoints.reached(STEP)


def _staging_error(data_dir: Path, error: OSError) -> BackupError:
    """The one line for a copy (or the journal) that could not be written: where, and why."""
    where = Path(error.filename).parent if error.filename else data_dir
    if error.errno in NO_SPACE_ERRNOS:
        return BackupError(
            f"{where} is full ({error.strerror}) while the backup was copied there: nothing "
            f"was changed; free some space (`df -h {where}`) and run it again"
        )
    return BackupError(
        f"cannot write the restored copy to {where} ({error.strerror}): nothing was changed"
    )


def _undo_after(data_dir: Path, journal: Journal, error: Exception) -> BackupError:
    """Roll back a swap that failed halfway; the error to show."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    try:
        journal.state = "rolling_back"
        write_journal(data_dir, journal)
        roll_back(journal)
        remove_journal(data_dir)
    except (OSError, BackupError, RestoreJournalError) as second:
        return BackupError(
            f"the restore stopped halfway ({reason}) and could not be undone ({second}): "
            f"{data_dir / JOURNAL_NAME} says what is left to do; fix the cause and run "
            "`assistant db check`, which finishes or undoes it"
        )
    return BackupError(f"the restore failed ({reason}) and was undone: nothing was changed")


def _restored(swap: Swap) -> Restored:
    kept = [swap.aside + side for side in ("", "-wal", "-shm", "-journal")]
    return Restored(swap.role, swap.target, [p for p in kept if os.path.lexists(p)], swap.link)


def holders(path: Path) -> list[int]:
    """Pids of the processes (this one aside) that have ``path`` open (Linux /proc)."""
    found: list[int] = []
    if not Path("/proc/self/fd").is_dir():
        return found  # not Linux: nothing to ask (restore then relies on --force care)
    resolved = str(path.resolve())
    names = {resolved, *(resolved + side for side in SIDES)}
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
