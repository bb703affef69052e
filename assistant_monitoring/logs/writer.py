"""An append-only, size-rotated log file that many processes can share safely.

Every CLI invocation is its own process and they often run at once, all writing to
``assistant.jsonl``. loguru's ``rotation=`` (like the stdlib's RotatingFileHandler)
assumes one writer: two processes rotating together lose or duplicate lines. The
rules here:

* Each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor. The
  kernel serialises appends to one inode, so lines from different processes never
  interleave or overwrite each other.
* After a write, ``lseek`` tells the file's current end (our line plus everyone
  else's). Past ``max_bytes`` the writer takes an exclusive ``flock`` on a lock file
  beside the log and checks whether the path still names the inode it writes to:
  if another process already rotated, it only reopens; otherwise it shifts
  ``name.1 .. name.(N-1)`` up by one, renames the live file to ``name.1`` and reopens.
  Renames never touch open descriptors, so a process that wrote one more line into
  the just-rotated file loses nothing: that line is in ``name.1``.
* A writer that has been idle could hold a file that has since been rotated away and
  deleted; before writing after an idle spell it re-checks the path's inode.

Files: ``name`` (live), ``name.1`` (newest rotated) ... ``name.(max_files-1)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
import time
from pathlib import Path

# After this long without writing, check the path still names our file before writing.
_IDLE_RECHECK_SECONDS = 1.0


def rotated_path(path: Path, index: int) -> Path:
    """``assistant.jsonl`` -> ``assistant.jsonl.3`` (index 0 is the live file)."""
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


class RotatingFileWriter:
    """Append lines to ``path``, rotating at ``max_bytes`` and keeping ``max_files`` files."""

    def __init__(self, path: Path, *, max_bytes: int, max_files: int) -> None:
        if max_bytes < 1 or max_files < 1:
            raise ValueError("max_bytes and max_files must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.failures = 0
        self._lock = threading.Lock()
        self._lock_path = path.with_name(f".{path.name}.lock")
        self._lock_fd = -1
        self._fd = -1
        self._inode = -1
        self._last_write = 0.0
        self._reported_failure = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        old, self._fd = self._fd, fd
        self._inode = os.fstat(fd).st_ino
        if old >= 0:
            os.close(old)

    def write(self, data: bytes) -> None:
        """Append ``data`` (one or more whole lines) atomically; never raises."""
        with self._lock:
            try:
                now = time.monotonic()
                if now - self._last_write > _IDLE_RECHECK_SECONDS:
                    self._reopen_if_moved()
                self._last_write = now
                os.write(self._fd, data)
                if os.lseek(self._fd, 0, os.SEEK_CUR) >= self.max_bytes:
                    self._rotate()
            except OSError as exc:
                self._report(exc)

    def _reopen_if_moved(self) -> None:
        try:
            moved = os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            moved = True
        if moved:
            self._open()

    def _rotate(self) -> None:
        if self._lock_fd < 0:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                self._open()
                return
            if current.st_ino != self._inode or current.st_size < self.max_bytes:
                # Someone else rotated already: follow them to the new file.
                if current.st_ino != self._inode:
                    self._open()
                return
            self._shift_rotated_files()
            self._open()
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _shift_rotated_files(self) -> None:
        oldest = self.max_files - 1
        if oldest == 0:
            os.unlink(self.path)
            return
        # Missing files are normal (the first rotations), hence the suppress.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rotated_path(self.path, oldest))
        for index in range(oldest - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(rotated_path(self.path, index), rotated_path(self.path, index + 1))
        os.rename(self.path, rotated_path(self.path, 1))

    def _report(self, exc: OSError) -> None:
        # Logging must never take the assistant down (a full disk, a removed
        # directory): count the failure and say so once on stderr.
        self.failures += 1
        if not self._reported_failure:
            self._reported_failure = True
            print(
                f"warning: cannot write log file {self.path}: {exc.strerror or exc}; "
                "further log lines to it are dropped",
                file=sys.stderr,
            )
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError:
            pass

    def close(self) -> None:
        """Close the descriptors (idempotent)."""
        with self._lock:
            for fd in (self._fd, self._lock_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._lock_fd = -1
