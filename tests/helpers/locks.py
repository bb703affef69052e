"""Another process holding a SQLite file, for the bad-day tests (BAD-DAY.md, "held").

``writer``: ``BEGIN EXCLUSIVE`` (in WAL mode readers go on, every writer waits);
``reader``: ``locking_mode=EXCLUSIVE`` and a read (nobody may even read).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_SCRIPT = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "reader":
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
else:
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("held", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def held(path: Path, how: str = "reader") -> Iterator[None]:
    """``path`` held by another process (``writer`` or ``reader``) while the block runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(path), how], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "held"
        yield
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
