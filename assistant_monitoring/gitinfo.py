"""Which git repository and branch a run was started in, read from ``.git`` directly.

Cheap on purpose (it runs once per process): no ``git`` subprocess, only a walk up
from the working directory to the nearest ``.git`` and one read of its ``HEAD``.
The repository is named by its top-level folder, the branch by ``HEAD``'s ref, and
a detached HEAD by its short commit. Both are run columns only, never metric labels:
their values are unbounded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_MAX_DEPTH = 64  # deeper than any real tree; a guard against odd mounts
_MAX_HEAD_BYTES = 4096
_MAX_NAME = 200


@dataclass(frozen=True)
class GitPlace:
    """Where a run started: the repository's top-level folder name, and its branch."""

    repo: str
    branch: str | None


def find_git_place(start: Path) -> GitPlace | None:
    """The repository holding ``start`` (a folder), or None outside any repository.

    Handles worktrees and submodules, whose ``.git`` is a file naming the real git
    directory (``gitdir: ...``). Never raises: an unreadable ``.git`` means None.
    """
    try:
        folder = start.absolute()
        for _ in range(_MAX_DEPTH):
            marker = folder / ".git"
            if marker.is_dir():
                return GitPlace(_printable(folder.name or str(folder)), _branch(marker))
            if marker.is_file():
                git_dir = _linked_git_dir(marker)
                if git_dir is not None:
                    return GitPlace(_printable(folder.name or str(folder)), _branch(git_dir))
            if folder.parent == folder:
                return None
            folder = folder.parent
    except (OSError, ValueError):
        return None
    return None


@cache
def current_git_place() -> GitPlace | None:
    """The repository of this process's working directory (read once per process)."""
    try:
        return find_git_place(Path(os.getcwd()))
    except OSError:  # the working directory was deleted
        return None


def _linked_git_dir(marker: Path) -> Path | None:
    text = _read_small(marker)
    if text is None or not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else marker.parent / target


def _branch(git_dir: Path) -> str | None:
    head = _read_small(git_dir / "HEAD")
    if head is None:
        return None
    head = head.strip()
    if head.startswith("ref:"):
        ref = head[len("ref:") :].strip()
        return _printable(ref.removeprefix("refs/heads/")) or None
    # A detached HEAD holds the commit itself.
    if len(head) >= 7 and all(c in "0123456789abcdef" for c in head):
        return f"detached@{head[:7]}"
    return None


def _printable(text: str) -> str:
    """``text`` with anything a terminal would act on (escapes, bidi overrides) as '?'.

    A folder may be called anything; what is stored is shown by reports later.
    """
    return "".join(c if c.isprintable() else "?" for c in text)[:_MAX_NAME]


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_HEAD_BYTES)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    # Control characters have no business in a ref name; refuse rather than store them.
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        return None
    return text
