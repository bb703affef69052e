"""Look at a SQLite database without writing a byte of it, its ``-wal`` or its ``-shm``.

``db check`` promises to change nothing, and a read-only connection (``mode=ro``)
does not keep that promise on a WAL database: it creates ``-wal`` and ``-shm`` when
they are missing and writes its read mark into ``-shm``; and any read-write
connection, closing last, checkpoints a ``-wal`` a crashed writer left into the
database file. So :func:`read_untouched` picks the way to read by who else has the
database open:

* another process has it open: a plain read-only connection, one reader more among
  theirs (their ``-shm`` is shared memory in use; no checkpoint is ever run);
* nobody, and no committed frame waits in ``-wal``: ``immutable=1``, which reads the
  database file and nothing else (it is the whole database);
* nobody, and a crashed writer's ``-wal`` holds commits: a private directory beside it
  with hard links to the database and its ``-wal``, opened read-only there; SQLite
  builds its ``-shm`` in that directory, and the real files are only read.

Who holds what is asked with ``fcntl(F_GETLK)``, which only reads the kernel's lock
table, at the byte offsets of SQLite's documented locking protocol
(https://sqlite.org/lockingv3.html, https://sqlite.org/walformat.html). Linux only
(the layout of ``struct flock`` differs elsewhere); on other systems the plain
read-only connection is used, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import stat
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from assistant_monitoring.sqlitefile import open_immutable, open_read_only

# The database file's lock bytes: PENDING, RESERVED, then the SHARED range (510 bytes).
_PENDING_BYTE = 0x40000000
_RESERVED_BYTE = _PENDING_BYTE + 1
_LOCK_RANGE = 2 + 510
# In -shm: the WAL write lock is slot 0 at byte 120; every connection holds a read
# lock on the "DMS" byte (128) while it is open.
_SHM_WRITE_BYTE = 120
_SHM_DMS_BYTE = 128
_WAL_HEADER_BYTES = 32
_FLOCK = "hhqqi4x"  # Linux struct flock: type, whence, start, len, pid


def _lock_holder(path: Path, start: int, length: int) -> int | None:
    """The pid of another process holding a lock on ``path``'s bytes, or None (free, absent)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else int(pid)


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def can_ask_locks() -> bool:
    """Whether this system's lock table can be asked (Linux)."""
    return sys.platform.startswith("linux")


def open_elsewhere(path: Path) -> int | None:
    """The pid of another process that has the database open (or in a transaction), or None."""
    return _lock_holder(path, _PENDING_BYTE, _LOCK_RANGE) or _lock_holder(
        _side(path, "-shm"), _SHM_DMS_BYTE, 1
    )


def write_lock_holder(path: Path) -> int | None:
    """The pid of another process holding the write lock (or an exclusive one), or None."""
    return (
        _lock_holder(_side(path, "-shm"), _SHM_WRITE_BYTE, 1)
        or _lock_holder(path, _RESERVED_BYTE, 1)
        or _lock_holder(path, _PENDING_BYTE, 1)
    )


def _wal_mode(path: Path) -> bool:
    """Whether the header says WAL (bytes 18 and 19 are 2): only then are -wal/-shm used."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def _wal_frames(path: Path) -> bool:
    """Whether ``-wal`` holds more than its header: commits the database file lacks."""
    try:
        return _side(path, "-wal").stat().st_size > _WAL_HEADER_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def read_untouched(path: Path, *, timeout: float) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path`` that writes no file of it (see the module doc)."""
    if not can_ask_locks() or not _wal_mode(path) or open_elsewhere(path) is not None:
        conn = open_read_only(path, timeout=timeout)
        try:
            yield conn
        finally:
            conn.close()
        return
    if not _wal_frames(path):
        conn = open_immutable(path, timeout=timeout)
        try:
            yield conn
        finally:
            conn.close()
        return
    with _linked_copy(path) as private:
        conn = (
            open_read_only(path, timeout=timeout)
            if private is None
            else open_read_only(private, timeout=timeout)
        )
        try:
            yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def _linked_copy(path: Path) -> Iterator[Path | None]:
    """The database and its ``-wal`` hard-linked into a private directory beside them.

    None when that cannot be made (a read-only directory, no hard links on this file
    system): the caller then reads in place, as any reader would.
    """
    try:
        private = Path(tempfile.mkdtemp(prefix=f".{path.name}.check-", dir=path.parent))
    except OSError:
        yield None
        return
    try:
        try:
            os.link(path, private / path.name)
            os.link(_side(path, "-wal"), private / f"{path.name}-wal")
        except OSError:
            yield None
            return
        yield private / path.name
    finally:
        shutil.rmtree(private, ignore_errors=True)


def leftovers_of_checks(path: Path) -> list[Path]:
    """Private directories a killed check left beside ``path``, safe to remove.

    Only a directory with our prefix that is empty or holds nothing but hard links to
    ``path`` or its ``-wal`` (same inode, under the names a check gives them): a
    folder with anything else in it is someone's, and stays.
    """
    try:
        candidates = [
            entry
            for entry in path.parent.iterdir()
            if entry.name.startswith(f".{path.name}.check-")
            and entry.is_dir()
            and not entry.is_symlink()
        ]
    except OSError:
        return []
    return [entry for entry in candidates if _only_our_links(entry, path)]


def _only_our_links(folder: Path, path: Path) -> bool:
    originals = {path.name: path, f"{path.name}-wal": _side(path, "-wal")}
    try:
        for child in folder.iterdir():
            original = originals.get(child.name)
            if original is None:
                return False
            mine, theirs = child.lstat(), original.lstat()
            if not stat.S_ISREG(mine.st_mode) or (mine.st_dev, mine.st_ino) != (
                theirs.st_dev,
                theirs.st_ino,
            ):
                return False
    except OSError:
        return False
    return True


def remove_leftover_of_check(folder: Path) -> None:
    """Remove what :func:`leftovers_of_checks` found: its links, then the folder (never a tree)."""
    with contextlib.suppress(OSError):
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
