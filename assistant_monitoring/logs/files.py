"""The files of a log (the live one and its rotations) and walking them in blocks.

Files are listed newest first: the live file, then ``name.1``, ``name.2``... A block
walk yields chunks of whole lines, backwards from the end (the last lines first) or
forwards between two offsets.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from assistant_monitoring.errors import EXIT_FAILURE, MonitoringError
from assistant_monitoring.logs.writer import rotated_path

BLOCK = 256 * 1024


class LogFileError(MonitoringError):
    """A log file is there but cannot be read as one (a directory, no permission...)."""

    exit_code = EXIT_FAILURE

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path} {problem}")


def log_file_exists(path: Path) -> bool:
    """False only when nothing is there: a file that cannot be read still exists."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # there, but unusable: opening it reports why
    return True


def log_files(path: Path) -> list[Path]:
    """The live file and its rotated siblings that exist, newest first."""
    files = [path] if log_file_exists(path) else []
    index = 1
    while True:
        candidate = rotated_path(path, index)
        if not log_file_exists(candidate):
            # Tolerate one gap (a rotation in progress renames files one by one).
            if not log_file_exists(rotated_path(path, index + 1)):
                break
        else:
            files.append(candidate)
        index += 1
    return files


def open_log_file(path: Path) -> BinaryIO | None:
    """``path`` opened for reading; None when it does not exist (rotated away).

    Raises LogFileError when it exists but is not a readable regular file. O_NONBLOCK
    keeps a FIFO from blocking the open; it is refused just after.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as exc:
        raise LogFileError(path, "is not readable (permission denied)") from exc
    except OSError as exc:
        raise LogFileError(path, f"cannot be opened: {exc.strerror or exc}") from exc
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return os.fdopen(fd, "rb")
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise LogFileError(path, "is a directory, not a log file")
    raise LogFileError(path, "is not a regular file (pipes and devices cannot be read back)")


def reverse_chunks(handle: BinaryIO, size: int, block: int = BLOCK) -> Iterator[tuple[int, bytes]]:
    """``(file offset, chunk)`` pairs walking back from ``size``; see ``reverse_blocks``."""
    position = size
    # The start of the line that ends the chunk being built, latest piece first: a
    # line longer than a block grows by one piece per read, never by re-copying.
    pieces: list[bytes] = []
    while position > 0:
        start = max(0, position - block)
        handle.seek(start)
        data = handle.read(position - start)
        position = start
        if start == 0:
            chunk = data + b"".join(reversed(pieces))
            if chunk:
                yield 0, chunk
            return
        newline = data.find(b"\n")
        if newline < 0:
            pieces.append(data)
            continue
        chunk = data[newline + 1 :] + b"".join(reversed(pieces))
        if chunk:
            yield start + newline + 1, chunk
        pieces = [data[: newline + 1]]
    if pieces:
        yield 0, b"".join(reversed(pieces))


def reverse_blocks(handle: Any, size: int, block: int = BLOCK) -> Iterator[bytes]:
    """Yield chunks that each end on a line boundary, walking from ``size`` backwards.

    The first chunk yielded holds the last lines of the file; a trailing fragment
    with no newline (a line being written right now) is yielded as-is, last line
    last. Every chunk but the file's first holds only whole lines.
    """
    for _, chunk in reverse_chunks(handle, size, block):
        yield chunk


def forward_chunks(handle: BinaryIO, start: int, end: int, block: int = BLOCK) -> Iterator[bytes]:
    """Chunks of whole lines from ``start`` (a line start) up to ``end``, in file order."""
    handle.seek(start)
    position = start
    pending: list[bytes] = []
    while position < end:
        data = handle.read(min(block, end - position))
        if not data:
            break  # truncated since the backward pass
        position += len(data)
        newline = data.rfind(b"\n")
        if newline < 0:
            pending.append(data)
            continue
        pending.append(data[: newline + 1])
        yield b"".join(pending)
        pending = [data[newline + 1 :]]
    rest = b"".join(pending)
    if rest:
        yield rest
