"""Read JSON-lines logs newest-first, from the end, without reading whole files.

``assistant monitor logs -n 100`` on a 1 GiB log must answer in milliseconds, so the
reader walks each file backwards in blocks and stops as soon as it has enough
lines; which lines a query wants is decided in ``filters``, how the files are
listed and walked in ``files``.

``-n 100000000`` must not hold a whole log in memory: while the wanted lines fit in
a small budget they are collected on the way back and printed from memory; past it,
the backward pass only counts them and remembers where the oldest one starts, and a
forward pass from there yields them as it reads, with the same files and sizes.

Files are read newest first: the live file, then ``name.1``, ``name.2``...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from assistant_monitoring.logs.files import (
    BLOCK,
    LogFileError,
    forward_chunks,
    log_file_exists,
    log_files,
    open_log_file,
    reverse_blocks,
    reverse_chunks,
)
from assistant_monitoring.logs.filters import (
    LEVEL_RANK,
    LEVELS,
    LineFilter,
    LogEntry,
    LogQuery,
    Verdict,
    level_rank,
)

__all__ = [
    "LEVELS",
    "LEVEL_RANK",
    "MEMORY_BUDGET",
    "FilePosition",
    "LogEntry",
    "LogFileError",
    "LogQuery",
    "LogStream",
    "ReadResult",
    "level_rank",
    "log_file_exists",
    "log_files",
    "open_log_file",
    "open_logs",
    "read_logs",
    "reverse_blocks",
]

# A parsed entry costs about 8x its raw length in Python objects (a 61 MB log held
# as entries peaked at 490 MB), so 1 MiB of raw lines is ~8 MB resident, small next
# to the interpreter's own ~18 MB. Each entry also counts a flat 100 bytes: with
# tiny lines the per-object overhead, not the text, is what fills memory. Past the
# budget the second pass costs one more parse of the wanted lines, cheap next to
# printing that many, so a small budget loses little.
MEMORY_BUDGET = 1 << 20
_ENTRY_COST = 100


@dataclass
class ReadResult:
    """Entries oldest first (newest last, as a terminal shows them)."""

    entries: list[LogEntry] = field(default_factory=list)
    skipped: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class FilePosition:
    """A byte offset in one file (by identity, whatever its name is now)."""

    device: int
    inode: int
    offset: int


@dataclass
class _OpenFile:
    path: Path
    handle: BinaryIO
    size: int
    device: int
    inode: int


class LogStream:
    """The entries of a query, oldest first, yielded as they are read.

    ``open_logs`` has already walked back through the files, so ``files`` and
    ``skipped`` are known before the first entry; iterate once, then ``close()`` (or
    use ``with``) to release the files the forward pass reads.
    """

    def __init__(
        self,
        files: list[Path],
        skipped: int,
        entries: Iterator[LogEntry],
        opened: list[_OpenFile],
        end: FilePosition | None,
    ) -> None:
        self.files = files
        self.skipped = skipped
        # Where the live file ended when read: --follow starts there, so a line
        # written in between is neither lost nor shown twice.
        self.end = end
        self._entries = entries
        self._opened = opened

    def __iter__(self) -> Iterator[LogEntry]:
        return self

    def __next__(self) -> LogEntry:
        return next(self._entries)

    def close(self) -> None:
        """Release the files (idempotent)."""
        for current in self._opened:
            current.handle.close()
        self._opened = []

    def __enter__(self) -> LogStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _BackwardPass:
    """The first pass over the files, newest line first: it counts what a query wants.

    It collects the entries too, until they pass the memory budget; from then on it
    only counts them and notes where the oldest one starts, for the forward pass.
    """

    def __init__(
        self, line_filter: LineFilter, lines: int, memory_budget: int, block_size: int
    ) -> None:
        self.line_filter = line_filter
        self.lines = lines
        self.memory_budget = memory_budget
        self.block_size = block_size
        self.count = 0
        self.skipped = 0
        self.collected: list[LogEntry] | None = []  # newest first; None past the budget
        self.oldest = (0, 0)  # (index of the file, offset) of the oldest wanted line
        self._cost = 0

    @property
    def done(self) -> bool:
        return self.count >= self.lines

    def scan(self, index: int, current: _OpenFile) -> bool:
        """Read ``current`` back from its end; True when no older file is needed."""
        line_filter = self.line_filter
        chunks = reverse_chunks(current.handle, current.size, self.block_size)
        for chunk_start, chunk in chunks:
            for start, line in line_filter.candidates_newest_first(chunk):
                verdict = line_filter.judge(line)
                if isinstance(verdict, LogEntry):
                    self.count += 1
                    self.oldest = (index, chunk_start + start)
                    if self.collected is not None:
                        self.collected.append(verdict)
                        self._cost += len(line) + _ENTRY_COST
                        if self._cost > self.memory_budget:
                            self.collected = None  # count only; read forwards later
                    if self.done:
                        return True
                elif verdict is Verdict.MALFORMED:
                    self.skipped += 1
                elif verdict is Verdict.TOO_OLD:
                    return True
        return False


def open_logs(
    path: Path, query: LogQuery, *, memory_budget: int = MEMORY_BUDGET, block_size: int = BLOCK
) -> LogStream:
    """The last ``query.lines`` entries of ``path`` and its rotated files, as a stream.

    Entries are collected in memory while their raw size (plus a per-entry cost) stays
    within ``memory_budget`` bytes; past it they are read again, forwards, from the
    same open files up to the sizes seen going back, so a rotation or new lines in
    between change nothing. ``block_size`` is how much is read at once (tests make
    it small to cross block boundaries). Raises LogFileError for a file that cannot
    be read.
    """
    line_filter = LineFilter(query)
    backward = _BackwardPass(line_filter, query.lines, memory_budget, block_size)
    opened: list[_OpenFile] = []
    seen: set[tuple[int, int]] = set()
    try:
        for file in log_files(path):
            handle = open_log_file(file)
            if handle is None:
                continue  # rotated away between listing and opening
            info = os.fstat(handle.fileno())
            if (info.st_dev, info.st_ino) in seen:
                handle.close()  # renamed by a rotation while we listed: read once
                continue
            seen.add((info.st_dev, info.st_ino))
            current = _OpenFile(file, handle, info.st_size, info.st_dev, info.st_ino)
            opened.append(current)
            # With -n 0 the live file is still opened: checked, and its end noted.
            if backward.done:
                break
            try:
                if backward.scan(len(opened) - 1, current):
                    break
            except OSError as exc:
                raise LogFileError(file, f"cannot be read: {exc.strerror or exc}") from exc
    except BaseException:
        for current in opened:
            current.handle.close()
        raise

    end = None
    if opened and opened[0].path == path:
        live = opened[0]
        end = FilePosition(live.device, live.inode, live.size)
    files = [current.path for current in opened]
    entries: Iterator[LogEntry]
    if backward.collected is not None or backward.count == 0:
        for current in opened:
            current.handle.close()
        opened = []
        entries = reversed(backward.collected or [])
    else:
        index, offset = backward.oldest
        for current in opened[index + 1 :]:
            current.handle.close()
        opened = opened[: index + 1]
        entries = _read_forward(opened, (index, offset), backward.count, line_filter, block_size)
    return LogStream(files, backward.skipped, entries, opened, end)


def _read_forward(
    opened: list[_OpenFile],
    oldest: tuple[int, int],
    count: int,
    line_filter: LineFilter,
    block_size: int,
) -> Iterator[LogEntry]:
    """The ``count`` entries from ``oldest`` (file index, offset) on, oldest first."""
    index, offset = oldest
    remaining = count
    for position in range(index, -1, -1):
        current = opened[position]
        try:
            start = offset if position == index else 0
            for chunk in forward_chunks(current.handle, start, current.size, block_size):
                for _, line in line_filter.candidates(chunk):
                    entry = line_filter.judge(line)
                    if isinstance(entry, LogEntry):
                        yield entry
                        remaining -= 1
                        if remaining == 0:
                            return
        except OSError as exc:
            raise LogFileError(current.path, f"cannot be read: {exc.strerror or exc}") from exc


def read_logs(
    path: Path, query: LogQuery, *, memory_budget: int = MEMORY_BUDGET, block_size: int = BLOCK
) -> ReadResult:
    """Return the last ``query.lines`` entries of ``path`` and its rotated files.

    Every entry is held in the result; ``open_logs`` yields them in bounded memory.
    """
    with open_logs(path, query, memory_budget=memory_budget, block_size=block_size) as stream:
        entries = list(stream)
    return ReadResult(entries=entries, skipped=stream.skipped, files=stream.files)
