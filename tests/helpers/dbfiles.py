"""Real SQLite files in the states an operator meets on a bad day, for the db tests."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

_INTERIOR_TABLE, _LEAF_TABLE = 0x05, 0x0D


def table_hashes(path: Path) -> dict[str, str]:
    """A hash of every row of every table (column order, rowid order)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        hashes = {}
        for table in tables:
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                digest.update(repr(row).encode())
            hashes[table] = digest.hexdigest()
        return hashes


def both_hashes(data_dir: Path) -> dict[str, dict[str, str]]:
    """:func:`table_hashes` of both databases."""
    return {name: table_hashes(data_dir / name) for name in ("assistant.db", "monitoring.db")}


def files_in(directory: Path) -> dict[str, bytes | str]:
    """Every entry directly in ``directory``: its bytes, or what it is (subfolders aside)."""
    found: dict[str, bytes | str] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            found[entry.name] = f"symlink to {os.readlink(entry)}"
        elif entry.is_file():
            found[entry.name] = entry.read_bytes()
    return found


def add_conversation(path: Path, title: str = "later") -> str:
    """One committed conversation in the conversations database at ``path``."""
    ident = f"c_{time.time_ns()}"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO conversations (id, title, model, created_at, updated_at) "
            "VALUES (?, ?, 'claude-haiku-4-5', ?, ?)",
            (ident, title, time.time(), time.time()),
        )
    return ident


def commit_and_die(path: Path, sql: str, *params: Any) -> None:
    """Commit ``sql`` in another process that is then killed: the commit stays in ``-wal``."""
    script = (
        "import os, sqlite3, sys, json\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA journal_mode = WAL')\n"
        "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "conn.execute(sys.argv[2], json.loads(sys.argv[3]))\n"
        "os._exit(0)  # no close: no checkpoint, the WAL is left as a crash leaves it\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), sql, json.dumps(list(params))], check=True
    )


def _page(data: bytes, number: int, page_size: int) -> bytes:
    return data[(number - 1) * page_size : number * page_size]


def corrupt_a_table_page(path: Path, table: str) -> None:
    """Damage one leaf page of ``table`` that ``count(*)`` never reads (it uses an index).

    The file still opens and counts its rows; only an integrity check finds it, which is
    how a bad sector looks to a backup that does not check its copy.
    """
    data = bytearray(path.read_bytes())
    page_size = struct.unpack(">H", data[16:18])[0]
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    number = root
    while True:
        page = _page(data, number, page_size)
        offset = 100 if number == 1 else 0
        kind = page[offset]
        if kind == _LEAF_TABLE:
            break
        assert kind == _INTERIOR_TABLE, f"page {number} of {table} is of type {kind}"
        first_cell = struct.unpack(">H", page[offset + 12 : offset + 14])[0]
        number = struct.unpack(">I", page[first_cell : first_cell + 4])[0]
    assert number != root, f"{table} needs more than one page for this damage"
    data[(number - 1) * page_size] = 0x07  # no such page type
    path.write_bytes(bytes(data))
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # still "works"
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as error:
            verdict = str(error)
        assert verdict != "ok"


def rewrite_manifest(folder: Path, change: Any) -> None:
    """Apply ``change`` to the parsed manifest of ``folder`` and write it back."""
    path = folder / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def reseal(folder: Path, name: str) -> None:
    """Make ``folder``'s manifest agree with ``name`` again (size and sha256) after a change."""
    data = (folder / name).read_bytes()

    def update(document: dict[str, Any]) -> None:
        for entry in document["files"]:
            if entry["name"] == name:
                entry["bytes"] = len(data)
                entry["sha256"] = hashlib.sha256(data).hexdigest()

    rewrite_manifest(folder, update)


def from_the_future(path: Path) -> None:
    """Mark ``path`` as migrated by a newer version (a migration this one does not know)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_future', 0)")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
