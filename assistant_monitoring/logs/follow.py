"""Follow a log file as it grows, across rotation (``monitor logs --follow``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from assistant_monitoring.logs.reader import LogEntry, LogQuery
from assistant_monitoring.logs.writer import rotated_path

_POLL_SECONDS = 0.25


def follow_logs(
    path: Path,
    query: LogQuery,
    *,
    poll_seconds: float = _POLL_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogEntry]:
    """Yield entries appended to ``path`` from now on that pass ``query``'s filters.

    When the file is rotated (the path names a new inode), the rest of the old file
    is drained first, then the new one is read from its start: no line is skipped.
    """
    handle: BinaryIO | None = None
    start_at_end = True  # only the first file is joined at its end
    inode = -1
    carry = b""
    grep = query.grep.lower() if query.grep else None
    while not should_stop():
        if handle is None:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                sleep(poll_seconds)
                continue
            inode = os.fstat(handle.fileno()).st_ino
            if start_at_end:
                handle.seek(0, os.SEEK_END)
        data = handle.read()
        if data:
            lines = (carry + data).split(b"\n")
            carry = lines.pop()  # an unfinished line waits for its end
            for line in lines:
                entry = _parse(line)
                if entry is None:
                    continue
                if grep is not None and grep not in line.decode("utf-8", "replace").lower():
                    continue
                if query.matches(entry):
                    yield LogEntry(line.decode("utf-8", "replace"), entry)
            continue
        try:
            rotated = os.stat(path).st_ino != inode
        except FileNotFoundError:
            rotated = False  # mid-rotation: the new file appears in a moment
        if rotated:
            handle.close()
            carry = b""
            start_at_end = False
            try:
                handle = _open_successor(path, inode)
            except FileNotFoundError:
                handle = None  # mid-rotation: retry on the next poll, from the start
                continue
            inode = os.fstat(handle.fileno()).st_ino
            continue
        sleep(poll_seconds)
    if handle is not None:
        handle.close()


def _open_successor(path: Path, inode: int) -> BinaryIO:
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
                try:
                    return successor.open("rb")
                except FileNotFoundError:
                    break
        except FileNotFoundError:
            break
        index += 1
    return path.open("rb")  # our file is gone (deleted by retention): go live


def _parse(line: bytes) -> dict[str, object] | None:
    if not line.strip():
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
