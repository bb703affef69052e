"""Follow a log file as it grows, across rotation (``monitor logs --follow``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from assistant_monitoring.logs.files import open_log_file
from assistant_monitoring.logs.filters import LineFilter, LogEntry, LogQuery
from assistant_monitoring.logs.reader import FilePosition
from assistant_monitoring.logs.writer import rotated_path

_POLL_SECONDS = 0.25
# Read at most this much at once: a follower that joins far behind (or a burst of
# writes) must not pull a whole file into memory.
_READ_BYTES = 1024 * 1024


def follow_logs(
    path: Path,
    query: LogQuery,
    *,
    start: FilePosition | None = None,
    poll_seconds: float = _POLL_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogEntry]:
    """Yield entries appended to ``path`` from now on that pass ``query``'s filters.

    ``start`` (``LogStream.end``) is where the lines already shown end: following
    resumes there, in that file even if it has been rotated since, so nothing written
    in between is lost. Without it, following starts at the current end.

    When the file is rotated (the path names a new inode), the rest of the old file
    is drained first, then the new one is read from its start: no line is skipped.
    Raises LogFileError if the path turns into something that is not a log file.
    """
    line_filter = LineFilter(query)
    handle: BinaryIO | None = None
    first = True  # only the first file is joined at ``start`` or at its end
    inode = -1
    carry = b""
    drained = False  # read once more since the path was seen to name a new file
    while not should_stop():
        if handle is None:
            handle = _open_first(path, start) if first else open_log_file(path)
            if handle is None:
                sleep(poll_seconds)
                continue
            inode = os.fstat(handle.fileno()).st_ino
            first = False
        data = handle.read(_READ_BYTES)
        if data:
            lines = (carry + data).split(b"\n")
            carry = lines.pop()  # an unfinished line waits for its end
            for line in lines:
                entry = line_filter.judge(line)
                if isinstance(entry, LogEntry):
                    yield entry
            continue
        try:
            rotated = os.stat(path).st_ino != inode
        except FileNotFoundError:
            rotated = False  # mid-rotation: the new file appears in a moment
        if rotated and not drained:
            # Lines can land in our file between the empty read above and the
            # rotation (found on a busy machine: a dozen lines lost); once the path
            # names a new file nothing more is written to ours, so one more read
            # takes the rest.
            drained = True
            continue
        if rotated:
            drained = False
            handle.close()
            carry = b""
            handle = _open_successor(path, inode)
            if handle is None:
                continue  # mid-rotation: retry on the next poll, from the start
            inode = os.fstat(handle.fileno()).st_ino
            continue
        sleep(poll_seconds)
    if handle is not None:
        handle.close()


def _open_first(path: Path, start: FilePosition | None) -> BinaryIO | None:
    """The file ``start`` is in, at ``start``; else ``path``, at its end."""
    if start is not None:
        index = 0
        while True:
            candidate = rotated_path(path, index)
            try:
                info = os.stat(candidate)
            except FileNotFoundError:
                break
            if (info.st_dev, info.st_ino) == (start.device, start.inode):
                handle = open_log_file(candidate)
                if handle is not None:
                    handle.seek(start.offset)
                    return handle
                break
            index += 1
    handle = open_log_file(path)
    if handle is not None:
        handle.seek(0, os.SEEK_END)  # no start, or its file is gone: only new lines
    return handle


def _open_successor(path: Path, inode: int) -> BinaryIO | None:
    """Open the file written after ours, from its start.

    Several rotations can happen between two polls: our file may now be ``name.3``,
    so the next lines are in ``name.2``, not in the live file.
    """
    index = 1
    while True:
        candidate = rotated_path(path, index)
        try:
            if os.stat(candidate).st_ino == inode:
                successor = path if index == 1 else rotated_path(path, index - 1)
                handle = open_log_file(successor)
                if handle is None:
                    break
                if os.stat(candidate).st_ino == inode:
                    return handle
                # Rotated again between the look and the open: the name now holds
                # a newer file. Look again from the start.
                handle.close()
                index = 1
                continue
        except FileNotFoundError:
            break
        index += 1
    return open_log_file(path)  # our file is gone (deleted by retention): go live
