"""Small file operations that survive a crash or a SIGKILL, for backup and restore.

A rename is atomic on POSIX file systems, but only durable once the directory that
holds the name is flushed; a file's bytes are durable once it is flushed. These
helpers do both, so a multi-step operation can name a step done only when it is on
disk. Reading a small file (a manifest, a journal) is capped and refuses what is no
regular file before opening it: a FIFO would block, a device never end.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Errors that mean "no room": a full disk, a quota, or a file size limit (ulimit -f).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CHUNK = 1 << 20


class CappedReadError(Exception):
    """A small file that cannot be read as one: its text says why (no path: callers add it)."""


class DirectoryBusy(Exception):
    """Another process holds the directory's lock (:func:`directory_lock`)."""


def fsync_directory(directory: Path) -> None:
    """Make the renames and new names in ``directory`` durable."""
    # Some file systems cannot open a directory for fsync; a rename there is as
    # durable as it will ever be.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the old or the new."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)


def what_is(path: Path) -> str | None:
    """What ``path`` is when it is no regular file (a symlink counts), or None when it is one.

    Asked with ``lstat``: never opens, never follows a link.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return f"a symbolic link (to {os.readlink(path)})"
    return kind_of(mode)


def kind_of(mode: int) -> str:
    """What a file that is no regular file is, from its ``st_mode``, for messages."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_capped(path: Path, cap: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``cap`` of them.

    FileNotFoundError when nothing is there; CappedReadError when it is no regular
    file (checked before opening) or larger than ``cap`` (checked before reading, and
    again while reading, since the file may grow meanwhile).
    """
    odd = what_is(path)
    if odd is not None:
        raise CappedReadError(f"is {odd}, not a regular file")
    # O_NOFOLLOW and O_NONBLOCK: if the file was swapped for a link or a FIFO since
    # the lstat, the open fails or returns at once instead of following or blocking.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CappedReadError("is not a regular file")
        if info.st_size > cap:
            raise CappedReadError(_too_big(info.st_size, cap))
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise CappedReadError(_too_big(len(data), cap))
    return data


def _too_big(size: int, cap: int) -> str:
    return f"is {size / 2**20:.1f} MiB, more than the {cap / 2**20:g} MiB it may be"


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_durably(
    source: Path, target: Path, *, progress: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Copy ``source`` to a new file ``target`` and flush it: (bytes, sha256 of what was written).

    ``target`` must not exist (``O_EXCL``): a copy never overwrites anything.
    """
    digest = hashlib.sha256()
    copied = 0
    with source.open("rb") as reader:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
                digest.update(chunk)
                copied += len(chunk)
                if progress is not None:
                    progress(copied)
            writer.flush()
            os.fsync(writer.fileno())
    return copied, digest.hexdigest()


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``directory``."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


@contextlib.contextmanager
def directory_lock(directory: Path, *, wait_seconds: float = 0) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` itself, waited for up to ``wait_seconds``.

    On the directory rather than on a lock file: nothing is left behind, and a
    killed holder's lock goes with its process. DirectoryBusy when still held by
    another process after the wait; OSError when the directory cannot be opened.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DirectoryBusy(str(directory)) from None
                time.sleep(0.05)  # signal handlers run between the tries
        yield
    finally:
        os.close(fd)  # closing lets the lock go
