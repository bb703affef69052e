"""Follow a log file as it grows, across rotation (``monitor logs --follow``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from assistant_monitoring.logs.reader import LogEntry, LogQuery

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
            handle = path.open("rb")
            inode = os.fstat(handle.fileno()).st_ino
            carry = b""
            continue
        sleep(poll_seconds)
    if handle is not None:
        handle.close()


def _parse(line: bytes) -> dict[str, object] | None:
    if not line.strip():
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
