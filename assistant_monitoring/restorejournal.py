"""The journal of a restore under way, and what finishes or undoes one that was killed.

``DATA_DIR/.restore-journal.json`` (written atomically and flushed, see
:mod:`~assistant_monitoring.restore` for the steps) says, per database, which file
is replaced, the copy staged beside it and the name the current file is kept under,
and how far the restore got: ``staging`` (nothing live changed yet), ``swapping``
(every staged copy whole; files being moved), ``rolling_back``. Each direction is a
series of renames, each done only when what it moves is still there, so either can
be rerun from any point: a SIGKILL in the middle of a recovery is recovered too.

Kept light (no SQLite, no settings): every command calls :func:`finish_interrupted`
before it opens a database, and with no journal that costs one ``lstat``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant_monitoring import killpoints
from assistant_monitoring.durable import (
    CappedReadError,
    DirectoryBusy,
    directory_lock,
    fsync_directory,
    read_capped,
    sha256_of,
    write_atomically,
)
from assistant_monitoring.errors import MonitoringError

__all__ = ["JOURNAL_NAME", "Journal", "RestoreJournalError", "Swap", "finish_interrupted"]

JOURNAL_NAME = ".restore-journal.json"
STEP = "restore"  # the kill hook's step name, shared with restore.py
SIDES = ("-journal", "-wal", "-shm")  # moved before the file: never a file without its WAL
_MADE_BY = "assistant db restore"
_JOURNAL_CAP_BYTES = 1 << 20
_STATES = ("staging", "swapping", "rolling_back")


class RestoreJournalError(MonitoringError):
    """A restore could not be finished, undone or started because of another one (exit 1)."""

    exit_code = 1


@dataclass
class Swap:
    """One database's part of the journal."""

    role: str
    target: str
    incoming: str
    aside: str
    had_main: bool
    sha256: str
    bytes: int
    link: str | None = None


@dataclass
class Journal:
    """What a restore under way is doing: enough to finish it or undo it from any step."""

    folder: str
    created_at: str
    state: str
    swaps: list[Swap] = field(default_factory=list)
    pid: int = 0

    def encode(self) -> bytes:
        document = {"format": 1, "made_by": _MADE_BY, **asdict(self)}
        return (json.dumps(document, indent=2) + "\n").encode()


# -- the two directions, each safe to rerun from any point ----------------------------------


def forward(journal: Journal) -> None:
    for swap in journal.swaps:
        target, incoming = Path(swap.target), Path(swap.incoming)
        if not os.path.lexists(incoming):
            continue  # this one is in place already
        for side in (*SIDES, ""):
            current, kept = Path(swap.target + side), Path(swap.aside + side)
            if os.path.lexists(current):
                _refuse_conflict(current, kept)
                os.rename(current, kept)
                fsync_directory(target.parent)
                killpoints.reached(STEP)
        os.rename(incoming, target)
        fsync_directory(target.parent)
        killpoints.reached(STEP)


def roll_back(journal: Journal) -> None:
    for swap in journal.swaps:
        target, incoming = Path(swap.target), Path(swap.incoming)
        swapped = (
            not os.path.lexists(incoming)
            and os.path.lexists(target)
            and (not swap.had_main or os.path.lexists(swap.aside))
        )
        if swapped and journal.state != "staging":
            # The restored file goes back to its staging name, with whatever SQLite made
            # beside it, so that nothing pairs with the old file once that is back.
            for side in (*SIDES, ""):
                if os.path.lexists(swap.target + side):
                    os.replace(swap.target + side, swap.incoming + side)
        for side in ("", *SIDES):
            kept, current = Path(swap.aside + side), Path(swap.target + side)
            if os.path.lexists(kept):
                _refuse_conflict(kept, current)
                os.rename(kept, current)
        for side in (*SIDES, ""):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(swap.incoming + side)
        if target.parent.exists():
            fsync_directory(target.parent)


def _refuse_conflict(source: Path, destination: Path) -> None:
    if os.path.lexists(destination):
        raise RestoreJournalError(
            f"both {source} and {destination} exist, so the restore cannot move one onto the "
            "other: move the one that is not wanted out of the way, then run `assistant db check`"
        )


# -- the journal, and finishing what a killed restore left ----------------------------------


def finish_interrupted(
    data_dir: Path, *, targets: Iterable[Path], wait_ms: float | None = None
) -> str | None:
    """Finish or undo a restore a killed process left in ``data_dir``; what was done, or None.

    ``targets``: the two databases of the current settings (``DATABASE_PATH``,
    ``MONITORING_DB_PATH``): a journal that names any other file is refused, touching
    nothing (a copied data dir, a hand-edited journal). Cheap when there is nothing to
    do (one ``lstat``). Waits up to ``wait_ms``
    (default ``DATABASE_BUSY_TIMEOUT``) for a restore under way, then refuses.
    """
    if not os.path.lexists(data_dir / JOURNAL_NAME):
        return None
    if wait_ms is None:
        from assistant_monitoring.sqlitefile import busy_timeout_ms

        wait_ms = busy_timeout_ms()
    with restore_lock(data_dir, wait_ms=wait_ms):
        return finish_locked(data_dir, targets=targets)


def finish_locked(data_dir: Path, *, targets: Iterable[Path]) -> str | None:
    """:func:`finish_interrupted`, for a caller that holds the restore lock already."""
    journal = _read_journal(data_dir, targets)
    if journal is None:
        return None
    try:
        if journal.state == "swapping" and _staged_whole(journal):
            forward(journal)
            done = "finished it: both databases are the backup's"
        else:
            if journal.state == "swapping":
                journal.state = "rolling_back"
                write_journal(data_dir, journal)
            roll_back(journal)
            done = "undid it: both databases are as they were before it"
        remove_journal(data_dir)
    except OSError as error:
        # Nothing is lost: the journal stays, and the next command tries again.
        raise RestoreJournalError(
            f"an interrupted restore from {journal.folder} could not be finished "
            f"({error.strerror}: {error.filename}): fix that (a read-only or full disk?) and "
            f"run any command again; {data_dir / JOURNAL_NAME} says what is left to do"
        ) from None
    return f"an interrupted restore from {journal.folder} was found: {done}"


def _staged_whole(journal: Journal) -> bool:
    """Whether every copy not yet in place is still exactly what was staged."""
    for swap in journal.swaps:
        incoming = Path(swap.incoming)
        if not os.path.lexists(incoming):
            if not os.path.lexists(swap.target):
                return False  # neither staged nor in place: cannot go forward
            continue
        try:
            if incoming.stat().st_size != swap.bytes or sha256_of(incoming) != swap.sha256:
                return False
        except OSError:
            return False
    return True


def write_journal(data_dir: Path, journal: Journal) -> None:
    write_atomically(data_dir / JOURNAL_NAME, journal.encode())


def remove_journal(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / JOURNAL_NAME).unlink()
    fsync_directory(data_dir)


def _read_journal(data_dir: Path, targets: Iterable[Path]) -> Journal | None:
    path = data_dir / JOURNAL_NAME
    try:
        document = json.loads(read_capped(path, _JOURNAL_CAP_BYTES))
        return _journal_from(document, targets)
    except FileNotFoundError:
        return None
    except RecursionError:
        raise RestoreJournalError(
            f"{path}, the journal of an interrupted restore, cannot be used (it is nested too "
            "deeply to be a journal): see README 'When files break' to finish the restore by hand"
        ) from None
    except (CappedReadError, OSError, ValueError, KeyError, TypeError, OverflowError) as error:
        raise RestoreJournalError(
            f"{path}, the journal of an interrupted restore, cannot be used ({error}): see "
            "README 'When files break' to finish the restore by hand"
        ) from None


def _journal_from(document: Any, targets: Iterable[Path]) -> Journal:
    if not isinstance(document, dict) or document.get("made_by") != _MADE_BY:
        raise ValueError("not a restore journal")
    if document.get("format") != 1:
        raise ValueError(f"format {document.get('format')!r}, written by another version")
    state = document["state"]
    if state not in _STATES:
        raise ValueError(f"state {state!r}")
    swaps = [Swap(**swap) for swap in document["swaps"]]
    if not all(
        isinstance(value, str) and "\0" not in value
        for swap in swaps
        for value in (swap.target, swap.incoming, swap.aside)
    ):
        raise TypeError("file names must be strings without a null byte")
    # Only the current settings' databases (compared where they lead): a journal copied
    # with its data dir, or edited by hand, names files this run must not touch.
    allowed = {os.path.realpath(target) for target in targets}
    named = [os.path.realpath(swap.target) for swap in swaps]
    if len(set(named)) != len(named) or not set(named) <= allowed:
        raise ValueError(
            "it names files other than this profile's DATABASE_PATH and MONITORING_DB_PATH"
        )
    for swap in swaps:
        target = Path(swap.target)
        # Only ever the names this module gives: a journal cannot make it move other files.
        if not (
            target.is_absolute()
            and Path(swap.incoming).parent == target.parent
            and Path(swap.incoming).name.startswith(f".{target.name}.restoring-")
            and Path(swap.aside).parent == target.parent
            and Path(swap.aside).name.startswith(f"{target.name}.before-restore-")
        ):
            raise ValueError(f"unexpected file names for {target}")
    return Journal(
        str(document["folder"]), str(document["created_at"]), state, swaps, int(document["pid"])
    )


@contextlib.contextmanager
def restore_lock(data_dir: Path, *, wait_ms: float) -> Iterator[None]:
    """One restore (or recovery) at a time per data directory (a lock on the directory)."""
    try:
        with directory_lock(data_dir, wait_seconds=wait_ms / 1000):
            yield
    except DirectoryBusy:
        raise RestoreJournalError(
            f"a restore is under way in {data_dir}: wait for it to finish, then run this again"
        ) from None
    except OSError as error:
        raise RestoreJournalError(
            f"cannot lock {data_dir} for the restore ({error.strerror})"
        ) from None
