"""`assistant db backup|restore|vacuum`: consistent copies, verified restores, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from assistant_monitoring.backup import backups_in, make_backup, prune, verify
from assistant_monitoring.inventory import managed_databases
from assistant_monitoring.settings import load_settings
from tests.conftest import run_cli, subprocess_env
from tests.helpers.dbfiles import table_hashes
from tests.test_db_check import healthy


def add_conversation(data_dir: Path) -> None:
    with closing(sqlite3.connect(data_dir / "assistant.db")) as conn, conn:
        conn.execute(
            "INSERT INTO conversations (id, title, model, created_at, updated_at) "
            "VALUES (?, 'later', 'claude-haiku-4-5', ?, ?)",
            (f"c_{time.time_ns()}", time.time(), time.time()),
        )


def backup_json(*args: str, **env: str) -> tuple[int, Any, str]:
    result = run_cli("db", "backup", "--json", *args, **env)
    return (
        result.returncode,
        json.loads(result.stdout) if result.returncode == 0 else None,
        result.stderr,
    )


def test_round_trip_restores_every_table_and_keeps_the_current_files(data_dir: Path) -> None:
    healthy(data_dir)
    add_conversation(data_dir)
    before = {name: table_hashes(data_dir / name) for name in ("assistant.db", "monitoring.db")}
    code, made, stderr = backup_json()
    assert code == 0, stderr
    folder = Path(made["path"])
    assert folder.parent == data_dir / "backups"
    assert folder.name.startswith("assistant-backup-")
    files = {entry["name"]: entry for entry in made["files"]}
    assert files["monitoring.db"]["rows"]["pipeline_runs"] == 500
    assert "m004_alerts" in files["monitoring.db"]["migrations"]
    # Life goes on after the backup...
    add_conversation(data_dir)
    with closing(sqlite3.connect(data_dir / "monitoring.db")) as conn, conn:
        conn.execute("DELETE FROM pipeline_runs WHERE rowid % 2 = 0")
    changed = table_hashes(data_dir / "monitoring.db")
    # ...then the backup is restored.
    result = run_cli("db", "restore", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    restored = json.loads(result.stdout)
    for name in ("assistant.db", "monitoring.db"):
        assert table_hashes(data_dir / name) == before[name], name
    aside = [Path(p) for item in restored["databases"] for p in item["moved_aside"]]
    assert {p.name.split(".before-restore-")[0] for p in aside} >= {"assistant.db", "monitoring.db"}
    kept = next(p for p in aside if p.name.startswith("monitoring.db.before-restore-"))
    assert table_hashes(kept) == changed, "the current file is kept as it was"
    assert run_cli("db", "check").returncode == 0


def test_a_tampered_backup_is_refused_with_nothing_touched(data_dir: Path) -> None:
    healthy(data_dir)
    code, made, _ = backup_json()
    assert code == 0
    copy = Path(made["path"]) / "monitoring.db"
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    copy.write_bytes(bytes(data))
    live = {p.name: p.read_bytes() for p in data_dir.glob("*.db")}
    result = run_cli("db", "restore", made["path"])
    assert result.returncode == 1
    assert "does not match the manifest" in result.stderr
    assert "nothing was restored" in result.stderr
    assert {p.name: p.read_bytes() for p in data_dir.glob("*.db")} == live
    assert not list(data_dir.glob("*.before-restore-*"))


def test_restore_refuses_while_a_database_is_open_unless_forced(data_dir: Path) -> None:
    healthy(data_dir)
    code, made, _ = backup_json()
    assert code == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1').fetchone()\n"
            "print('open', flush=True); time.sleep(30)\n",
            str(data_dir / "monitoring.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        result = run_cli("db", "restore", made["path"])
        assert result.returncode == 1
        assert f"is open in process {holder.pid}" in result.stderr
        assert "--force" in result.stderr
        assert not list(data_dir.glob("*.before-restore-*"))
        forced = run_cli("db", "restore", made["path"], "--force")
        assert forced.returncode == 0, forced.stderr
    finally:
        holder.kill()
        holder.communicate()


def test_keep_prunes_the_oldest(data_dir: Path) -> None:
    healthy(data_dir)
    settings = load_settings().settings
    databases = managed_databases(settings)
    destination = data_dir / "elsewhere"
    for number in range(4):
        make_backup(databases, destination, busy_timeout_ms=5000, now=1_790_000_000 + number)
    assert len(backups_in(destination)) == 4
    removed = prune(destination, 2)
    left = backups_in(destination)
    assert [p.name for p in left] == [
        "assistant-backup-20260921T141322Z",
        "assistant-backup-20260921T141323Z",
    ]
    assert len(removed) == 2
    code, _, _ = backup_json(str(destination), "--keep", "1")
    assert code == 0
    assert len(backups_in(destination)) == 1
    verify(backups_in(destination)[0])


def test_nothing_to_back_up_is_one_line_and_exit_1(data_dir: Path) -> None:
    result = run_cli("db", "backup")
    assert result.returncode == 1
    assert "nothing to back up" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_vacuum_reports_sizes_and_makes_pages_returnable(data_dir: Path) -> None:
    healthy(data_dir)
    old = data_dir / "monitoring.db"
    with closing(sqlite3.connect(old)) as conn, conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")  # as a store made by an older version is
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        conn.execute("DELETE FROM pipeline_runs")
    result = run_cli("db", "vacuum", "--json")
    assert result.returncode == 0, result.stderr
    found = {d["role"]: d for d in json.loads(result.stdout)["databases"]}
    assert found["metrics"]["after"] < found["metrics"]["before"]
    with closing(sqlite3.connect(old)) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


WRITER = """
import sqlite3, sys, time
path, seconds, name = sys.argv[1], float(sys.argv[2]), sys.argv[3]
conn = sqlite3.connect(path, timeout=10, isolation_level=None)
end = time.monotonic() + seconds
number = 0
while time.monotonic() < end:
    conn.execute("BEGIN IMMEDIATE")
    # A run and its metrics flush in one transaction: a snapshot has both or neither.
    conn.execute(
        "INSERT INTO pipeline_runs (id, started_at, finished_at, status, duration_ms, "
        "stages, classifiers) VALUES (?, ?, ?, 'success', 1, '[]', '{}')",
        (f"{name}_{number}", time.time(), time.time()),
    )
    conn.execute("UPDATE backup_probe SET flushed = flushed + 1 WHERE writer = ?", (name,))
    conn.execute("COMMIT")
    number += 1
    time.sleep(0.002)
print(number)
"""


@pytest.mark.slow
def test_backups_while_eight_processes_write_are_consistent_snapshots(data_dir: Path) -> None:
    healthy(data_dir)
    store = data_dir / "monitoring.db"
    names = [f"w{n}" for n in range(8)]
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("CREATE TABLE backup_probe (writer TEXT PRIMARY KEY, flushed INTEGER)")
        conn.executemany("INSERT INTO backup_probe VALUES (?, 0)", [(n,) for n in names])
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), "20", name],
            stdout=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for name in names
    ]
    made: list[Path] = []
    try:
        deadline = time.monotonic() + 18
        while time.monotonic() < deadline:
            code, document, stderr = backup_json(str(data_dir / "during"))
            assert code == 0, stderr
            made.append(Path(document["path"]))
            time.sleep(1.1)  # one backup per second at most (the name has seconds)
    finally:
        written = [int(w.communicate(timeout=60)[0] or 0) for w in writers]
    assert all(w.returncode == 0 for w in writers), "a writer failed (blocked past 10 s?)"
    assert sum(written) > 1000
    assert len(made) >= 5
    for folder in made:
        verify(folder)  # sha256 and integrity_check
        with closing(sqlite3.connect(f"file:{folder / 'monitoring.db'}?mode=ro", uri=True)) as conn:
            for name in names:
                runs = conn.execute(
                    "SELECT count(*) FROM pipeline_runs WHERE id GLOB ?", (f"{name}_*",)
                )
                (flushed,) = conn.execute(
                    "SELECT flushed FROM backup_probe WHERE writer = ?", (name,)
                ).fetchone()
                assert runs.fetchone()[0] == flushed, (folder.name, name)


def test_vacuum_refuses_a_damaged_file_and_leaves_it_alone(data_dir: Path) -> None:
    healthy(data_dir)
    path = data_dir / "monitoring.db"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    cut = path.read_bytes()
    result = run_cli("db", "vacuum")
    assert result.returncode == 1
    assert "truncated" in result.stderr
    assert path.read_bytes() == cut
