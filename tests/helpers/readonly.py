"""Run a command that sees one directory as read-only, even as root.

``chmod a-w`` stops nobody when the tests run as root (CI and this machine do), so a
read-only directory is made the way a real one happens: a read-only bind mount, in a
private mount namespace of the child (``unshare -m``), invisible to everyone else.
Unprivileged, ``chmod`` is enough and is used instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_TOOLS


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(reason)
    pytest.skip(reason)


def read_only_argv(directory: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that ``directory`` is read-only for it (root only)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(directory), *argv]


@contextmanager
def read_only_directory(directory: Path) -> Iterator[list[str]]:
    """A prefix for commands that must see ``directory`` read-only (``[]``: chmod did it)."""
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield []
        finally:
            directory.chmod(mode)
        return
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        _skip_or_fail("unshare and mount (util-linux) are needed for a read-only directory as root")
    probe = subprocess.run(
        read_only_argv(directory, ["sh", "-c", f'! touch "{directory}/.probe" 2>/dev/null']),
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        _skip_or_fail(
            f"cannot make a read-only bind mount here (unshare -m: {probe.stderr.strip()!r})"
        )
    prefix = read_only_argv(directory, [])
    yield prefix


def full_disk_argv(directory: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run where ``directory`` is a small file system that is already full.

    The command sees whatever ``directory`` held copied onto a 1 MiB tmpfs mounted in
    its place, then a filler file taking the rest of the space (root only: a private
    mount namespace, as for :func:`read_only_argv`).
    """
    script = (
        'cp -a "$0" "$0.copy" && mount -t tmpfs -o size=1m tmpfs "$0" && '
        'cp -a "$0.copy/." "$0" && (dd if=/dev/zero of="$0/filler" bs=4k 2>/dev/null; true) '
        '&& exec "$@"'
    )
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(directory), *argv]


def require_mount_namespaces() -> None:
    """Skip (fail under CI) unless this process may mount in a namespace of its own."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        _skip_or_fail("mounting a small file system needs root and unshare (util-linux)")
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        _skip_or_fail(f"cannot make a mount namespace here ({probe.stderr.strip()!r})")
