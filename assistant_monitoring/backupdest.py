"""A backup destination (``DEST``): one run at a time, what runs left, which backups are ours.

``db backup`` locks ``DEST`` itself (``flock`` on the folder: no lock file, and a
killed run's lock goes with it), so leftovers found under the lock are never a run
still under way. Leftovers are ``.assistant-backup-STAMP.partial`` (a run cut off
while copying) and ``.assistant-backup-STAMP.deleting`` (cut off while pruning);
they are removed when empty, or when they hold our mark (``.made-by-assistant``, the
first thing a run writes) naming that very folder and nothing but files a run writes
(the databases, their ``-wal``/``-shm``/``-journal``, the manifest and its temporary);
anything else stays, and the run says it was left. Pruning removes only what
:func:`~assistant_monitoring.backupfolder.ours` recognises, never the backup this run
made, and renames each one to ``.NAME.deleting`` before emptying it, so that a kill
never leaves half a backup under a backup's name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from assistant_monitoring import killpoints
from assistant_monitoring.backupfolder import (
    FILE_NAMES,
    MANIFEST,
    MARK,
    NAME_PATTERN,
    BackupError,
    is_leftover_name,
    ours,
    sort_key,
)
from assistant_monitoring.durable import (
    NO_SPACE_ERRNOS,
    CappedReadError,
    DirectoryBusy,
    directory_lock,
    free_bytes,
    fsync_directory,
    read_capped,
)

__all__ = ["backups_in", "destination_error", "prune"]

_MARK_CAP_BYTES = 64 * 1024
_WRITTEN_BY_A_RUN = frozenset(
    {MARK, MANIFEST}
    | {
        f"{database}{side}"
        for database in FILE_NAMES.values()
        for side in ("", "-wal", "-shm", "-journal")
    }
)
# write_atomically's temporary name (.NAME.PID.tmp), for the manifest.
_TEMPORARY = re.compile(rf"\.{re.escape(MANIFEST)}\.\d+\.tmp")

STEP = "backup"  # the kill hook's step name (killpoints), shared with backup.py
# Below this, SQLite cannot grow a copy: a failed write there is a full destination.
_FULL_BELOW_BYTES = 256 * 1024


def write_mark(folder: Path, name: str) -> None:
    """The mark that says "made by db backup": a leftover holding it is ours to clean."""
    document = {"made_by": "assistant db backup", "name": name, "pid": os.getpid()}
    with (folder / MARK).open("x") as handle:
        handle.write(json.dumps(document) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def nearly_full(directory: Path) -> bool:
    """Whether ``directory``'s file system has (next to) no room left for a copy."""
    try:
        return free_bytes(directory) < _FULL_BELOW_BYTES
    except OSError:
        return False


def destination_error(destination: Path, error: OSError | sqlite3.Error) -> BackupError:
    """The one line for a destination that cannot be written: full, or why not."""
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    full = (
        (isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS)
        or "full" in str(error)
        or nearly_full(destination)
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
def destination_lock(destination: Path) -> Iterator[None]:
    """One run at a time in ``destination``: the others refuse at once (a cron overlap)."""
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BackupError(f"{destination} is not a directory: choose another DEST") from None
    except OSError as error:
        if error.errno == errno.ENOTDIR:
            raise BackupError(f"{destination} is not a directory: choose another DEST") from None
        raise destination_error(destination, error) from None
    try:
        with directory_lock(destination):
            yield
    except DirectoryBusy:
        raise BackupError(
            f"another backup is writing to {destination} now: let it finish, then run this again"
        ) from None


def clean_leftovers(destination: Path) -> tuple[list[Path], list[Path]]:
    """Remove what interrupted runs left in ``destination``: only ours (see the module doc).

    (the removed, the leftover-named folders left alone because they may not be ours).
    """
    cleaned, left = [], []
    for entry in sorted(destination.iterdir()):
        if not is_leftover_name(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        if not _leftover_is_ours(entry):
            left.append(entry)
            continue
        try:
            _empty_and_remove(entry)
        except OSError as error:
            raise destination_error(destination, error) from None
        cleaned.append(entry)
    if cleaned:
        fsync_directory(destination)
    return cleaned, left


def _leftover_is_ours(folder: Path) -> bool:
    """Empty, or marked with this very folder's name and holding only what a run writes."""
    try:
        contents = list(folder.iterdir())
    except OSError:
        return False
    if not contents:
        return True
    name = folder.name[1:].rsplit(".", 1)[0]  # .NAME.partial / .NAME.deleting
    try:
        mark = json.loads(read_capped(folder / MARK, _MARK_CAP_BYTES))
    except (OSError, CappedReadError, ValueError, RecursionError):
        return False
    if not isinstance(mark, dict) or mark.get("name") != name:
        return False  # a mark copied from elsewhere, or not ours
    allowed = _WRITTEN_BY_A_RUN
    return all(
        (child.name in allowed or _TEMPORARY.fullmatch(child.name) is not None)
        and stat.S_ISREG(child.lstat().st_mode)
        for child in contents
    )


def _empty_and_remove(folder: Path) -> None:
    # The mark goes last: until the folder is gone, a kill leaves it recognisably ours.
    for child in folder.iterdir():
        if child.name != MARK:
            child.unlink()
    (folder / MARK).unlink(missing_ok=True)
    folder.rmdir()


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
    with destination_lock(destination):
        return prune_locked(destination, keep, made=None)


def prune_locked(destination: Path, keep: int, *, made: Path | None) -> list[Path]:
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
        write_mark(folder, folder.name)
    deleting = destination / f".{folder.name}.deleting"
    os.rename(folder, deleting)
    fsync_directory(destination)
    killpoints.reached(STEP)
    _empty_and_remove(deleting)
    killpoints.reached(STEP)
