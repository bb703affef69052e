"""Every state a database file can be in gets its own diagnosis, and no file is harmed.

Damaged (junk, truncated, zero bytes), read-only, locked, a directory in the way or a
file where the data directory should be: each is named for what it is, with advice
that never throws good data away, and the file's bytes are never changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.errors import DatabaseError
from assistant.storage import Database
from assistant_monitoring.metrics.store import MetricsStore, StoreError
from assistant_monitoring.sqlitefile import (
    Subject,
    create_database_file,
    diagnose,
    is_valid,
    refuse_before_open,
)
from tests.helpers.readonly import full_disk_argv, read_only_directory, require_mount_namespaces


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def valid_database(path: Path, rows: int = 2000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 400,)] * rows)
    conn.close()
    return path


def subject(path: Path) -> Subject:
    return Subject(path, "the conversations database", "DATABASE_PATH")


def open_app_database(path: Path) -> None:
    async def run() -> None:
        database = Database(path, busy_timeout_ms=1000)
        try:
            await database.applied()
        finally:
            await database.close()

    asyncio.run(run())


def test_junk_file_is_damaged_and_leaves_no_thread_behind(tmp_path: Path) -> None:
    # The hang: aiosqlite's worker thread (not a daemon) of a connection whose PRAGMA
    # failed was never stopped, so the process could not exit.
    path = tmp_path / "assistant.db"
    path.write_bytes(bytes(range(256)) * 128)
    before = digest(path)
    threads = {t.ident for t in threading.enumerate()}
    with pytest.raises(DatabaseError, match=r"is damaged \(file is not a database\)"):
        open_app_database(path)
    leaked = [t for t in threading.enumerate() if t.ident not in threads and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    assert not [t for t in leaked if t.is_alive() and not t.daemon]
    assert digest(path) == before


def test_a_process_on_a_junk_database_exits(tmp_path: Path) -> None:
    path = tmp_path / "assistant.db"
    path.write_bytes(b"\x00junk" * 5000)
    code = (
        "import asyncio, sys; from pathlib import Path; from assistant.storage import Database\n"
        "async def main():\n"
        "    db = Database(Path(sys.argv[1]))\n"
        "    try:\n"
        "        await db.applied()\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.stdout.strip() == "DatabaseError", result.stderr


def test_zero_length_file_is_refused_not_initialised(tmp_path: Path) -> None:
    path = tmp_path / "assistant.db"
    path.write_bytes(b"")
    with pytest.raises(DatabaseError, match=r"is empty \(0 bytes\)"):
        open_app_database(path)
    assert path.stat().st_size == 0
    store_path = tmp_path / "monitoring.db"
    store_path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\)"):
        MetricsStore(store_path).connect()
    assert store_path.stat().st_size == 0


def test_truncated_file_says_how_much_is_missing(tmp_path: Path) -> None:
    path = valid_database(tmp_path / "assistant.db")
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    before = digest(path)
    with pytest.raises(DatabaseError, match=rf"is truncated \({size // 2} of {size} bytes\)"):
        open_app_database(path)
    assert digest(path) == before
    assert is_valid(path) is False


def test_a_directory_where_the_file_should_be(tmp_path: Path) -> None:
    path = tmp_path / "assistant.db"
    path.mkdir()
    with pytest.raises(DatabaseError, match="is a directory, not a database file: fix DATABASE_"):
        open_app_database(path)


def test_a_file_where_the_data_directory_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    path = blocker / "assistant.db"
    with pytest.raises(DatabaseError, match=rf"{blocker} is a file, not a directory"):
        open_app_database(path)
    with pytest.raises(StoreError, match=rf"{blocker} is a file, not a directory"):
        MetricsStore(blocker / "monitoring.db").connect()
    assert blocker.read_text() == "not a directory"


def test_locked_is_not_called_corrupt(tmp_path: Path) -> None:
    path = valid_database(tmp_path / "assistant.db", rows=1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.execute("BEGIN IMMEDIATE")
        conn.close()
        found = diagnose(subject(path), caught.value, busy_timeout_ms=50)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert found.kind == "locked"
    assert "locked by another process (waited 50 ms)" in found.message
    assert "move it aside" not in found.message
    assert found.data_intact


def test_missing_directory_is_named_for_readers(tmp_path: Path) -> None:
    found = refuse_before_open(subject(tmp_path / "nope" / "assistant.db"), creating=False)
    assert found is not None
    assert found.kind == "missing_directory"
    assert refuse_before_open(subject(tmp_path / "nope" / "assistant.db"), creating=True) is None


def test_new_databases_appear_whole(tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    path = tmp_path / "fresh" / "new.db"
    create_database_file(path)
    assert path.stat().st_size > 0
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    assert is_valid(path) is True
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["new.db"]  # no temporary left
    create_database_file(path)  # a second creator keeps the first's file
    assert is_valid(path) is True


def test_concurrent_creators_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    errors: list[BaseException] = []

    def open_store() -> None:
        store = MetricsStore(path)
        try:
            store.connect()
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert is_valid(path) is True


STORE_PROBE = """
import sys
from pathlib import Path
from assistant_monitoring.metrics.store import MetricsStore, StoreError
path = Path(sys.argv[1])
reader = MetricsStore(path, read_only_ok=True)
count = reader.connect().execute("SELECT count(*) FROM series").fetchone()[0]
print("reader", count, reader.read_only)
reader.close()
try:
    MetricsStore(path).connect()
except StoreError as error:
    print("writer", error)
"""


def store_with_one_series(directory: Path) -> Path:
    directory.mkdir()
    path = directory / "monitoring.db"
    store = MetricsStore(path)
    store.connect().execute("INSERT INTO series (family, labels) VALUES ('f', '[]')")
    store.close()
    return path


def probe_store(argv: list[str]) -> tuple[str, str]:
    """What STORE_PROBE, run as ``argv``, saw as a reader and as a writer."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    reader, writer = result.stdout.strip().splitlines()
    return reader, writer


def test_valid_store_in_a_read_only_directory_is_read_not_condemned(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    path = store_with_one_series(directory)
    before = digest(path)
    with read_only_directory(directory) as prefix:
        reader, writer = probe_store([*prefix, sys.executable, "-c", STORE_PROBE, str(path)])
    assert reader == "reader 1 True"
    assert "is intact but cannot be written" in writer
    assert "move it aside" not in writer
    assert "corrupt" not in writer
    assert "damaged" not in writer
    assert digest(path) == before


def test_a_full_disk_is_named_and_the_data_still_read(tmp_path: Path) -> None:
    # SQLite says only "disk I/O error" when it cannot grow its -wal and -shm files.
    require_mount_namespaces()
    directory = tmp_path / "data"
    path = store_with_one_series(directory)
    argv = full_disk_argv(directory, [sys.executable, "-c", STORE_PROBE, str(path)])
    reader, writer = probe_store(argv)
    assert reader == "reader 1 True"
    assert "the disk is full: free some space" in writer
    assert "disk I/O error" not in writer
