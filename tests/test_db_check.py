"""`assistant db check`: each database state diagnosed, with the documented exit code."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import flush_into_store, installed_assistant, run_cli, subprocess_env
from tests.helpers.dbfiles import commit_and_die, from_the_future
from tests.helpers.readonly import read_only_directory


def healthy(data_dir: Path) -> None:
    assert run_cli("db", "migrate").returncode == 0
    inst = Instrumentation(MetricsRegistry())
    for _ in range(200):
        inst.metrics.pipeline_runs.labels("success").inc()
        inst.metrics.pipeline_duration.observe(0.3)
    flush_into_store(data_dir, inst)
    conn = sqlite3.connect(data_dir / "monitoring.db")
    with conn:
        conn.executemany(
            "INSERT INTO pipeline_runs (id, started_at, finished_at, status, duration_ms, "
            "stages, classifiers, error_message) VALUES (?, ?, ?, 'success', 1, '[]', '{}', ?)",
            ((f"run_{n}", 1_790_000_000 + n, 1_790_000_001 + n, "x" * 2000) for n in range(500)),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def check(*args: str, prefix: list[str] | None = None, **env: str) -> tuple[int, Any, str]:
    result = subprocess.run(
        [*(prefix or []), installed_assistant(), "db", "check", "--json", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,
        check=False,
    )
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, document, result.stderr


def by_role(document: Any) -> dict[str, dict[str, Any]]:
    return {found["role"]: found for found in document["databases"]}


def test_healthy_databases_exit_0_with_their_facts(data_dir: Path) -> None:
    healthy(data_dir)
    code, document, stderr = check()
    assert code == 0, stderr
    assert document["ok"] is True
    metrics = by_role(document)["metrics"]
    assert metrics["status"] == "ok"
    assert "m003_pipeline_runs" in metrics["migrations"]
    runs = {t["name"]: t for t in metrics["tables"]}["pipeline_runs"]
    assert runs["rows"] == 500
    assert (runs["oldest"], runs["newest"]) == (1_790_000_000, 1_790_000_499)
    assert by_role(document)["conversations"]["status"] == "ok"
    text = run_cli("db", "check")
    assert text.returncode == 0
    assert "pipeline_runs" in text.stdout
    assert "500 rows" in text.stdout
    assert run_cli("db", "check", "--quick").returncode == 0


def test_missing_databases_say_what_creates_them(data_dir: Path) -> None:
    code, document, _ = check()
    assert code == 1
    found = by_role(document)
    assert found["conversations"]["status"] == "missing"
    assert "`assistant db migrate` creates it" in found["conversations"]["message"]
    assert not data_dir.exists(), "checking creates nothing"


def test_junk_is_corrupt_and_left_alone(data_dir: Path) -> None:
    healthy(data_dir)
    assert run_cli("db", "backup").returncode == 0
    junk = b"\x00not a database" * 1000
    (data_dir / "monitoring.db").write_bytes(junk)
    code, document, _ = check()
    assert code == 1
    metrics = by_role(document)["metrics"]
    assert metrics["status"] == "corrupt", metrics
    assert "restore it from a backup" in metrics["message"]
    (backup,) = (data_dir / "backups").iterdir()
    assert f"`assistant db restore {backup}`" in metrics["message"], "the newest backup, named"
    assert by_role(document)["conversations"]["status"] == "ok"
    assert (data_dir / "monitoring.db").read_bytes() == junk


def test_a_truncated_store_says_how_much_is_missing(data_dir: Path) -> None:
    healthy(data_dir)
    path = data_dir / "monitoring.db"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, document, _ = check()
    assert code == 1
    metrics = by_role(document)["metrics"]
    assert metrics["status"] == "truncated", metrics
    assert f"of {len(data)} bytes" in metrics["message"]
    assert "no backup in" in metrics["message"]


def test_an_empty_file_is_not_taken_for_a_new_database(data_dir: Path) -> None:
    healthy(data_dir)
    (data_dir / "assistant.db").write_bytes(b"")
    code, document, _ = check()
    assert code == 1
    assert by_role(document)["conversations"]["status"] == "empty"
    assert (data_dir / "assistant.db").stat().st_size == 0


def test_a_read_only_directory_is_intact_but_unwritable(data_dir: Path) -> None:
    healthy(data_dir)
    with read_only_directory(data_dir) as prefix:
        code, document, stderr = check(prefix=prefix)
    assert code == 1, stderr
    for found in by_role(document).values():
        assert found["status"] == "read_only", found
        assert "read-only" in found["message"]


def test_a_held_write_lock_is_locked_not_damaged(data_dir: Path) -> None:
    healthy(data_dir)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('held', flush=True)\n"
            "time.sleep(30)\n",
            str(data_dir / "monitoring.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        code, document, _ = check(DATABASE_BUSY_TIMEOUT="1000")
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.communicate()
    assert code == 1
    metrics = by_role(document)["metrics"]
    assert metrics["status"] == "locked", metrics
    assert "fuser" in metrics["message"]
    assert by_role(document)["conversations"]["status"] == "ok"
    assert took < 20


@pytest.mark.parametrize("args", [["--bogus"], ["extra"]])
def test_bad_usage_exits_2(data_dir: Path, args: list[str]) -> None:
    assert run_cli("db", "check", *args).returncode == 2


@pytest.mark.parametrize("name", ["assistant.db", "monitoring.db"])
def test_a_database_from_a_newer_version_is_a_problem(data_dir: Path, name: str) -> None:
    healthy(data_dir)
    from_the_future(data_dir / name)
    code, document, _ = check()
    assert code == 1
    role = "conversations" if name == "assistant.db" else "metrics"
    found = by_role(document)[role]
    assert found["status"] == "newer", found
    assert "m999_future" in found["message"]
    assert "upgrade" in found["message"]
    text = run_cli("db", "check")
    assert text.returncode == 1
    assert "upgrade" in text.stdout


def _snapshot(data_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in data_dir.iterdir() if p.is_file()
    }


def test_check_changes_no_file_not_even_a_leftover_wal(data_dir: Path) -> None:
    healthy(data_dir)
    # Two writers killed after their commits: the commits live only in the -wal files,
    # and one of them has lost its -shm too.
    commit_and_die(data_dir / "monitoring.db", "DELETE FROM pipeline_runs WHERE rowid % 2 = 0")
    commit_and_die(
        data_dir / "assistant.db",
        "INSERT INTO conversations (id, title, model, created_at, updated_at) "
        "VALUES ('c1', 't', 'm', 1, 1)",
    )
    (data_dir / "assistant.db-shm").unlink()
    before = _snapshot(data_dir)
    assert {"monitoring.db-wal", "monitoring.db-shm", "assistant.db-wal"} <= set(before)
    for args in ([], ["--quick"]):
        code, document, stderr = check(*args)
        assert code == 0, stderr
        runs = {t["name"]: t for t in by_role(document)["metrics"]["tables"]}["pipeline_runs"]
        assert runs["rows"] == 250, "the committed rows in the -wal are read"
        chats = {t["name"]: t for t in by_role(document)["conversations"]["tables"]}
        assert chats["conversations"]["rows"] == 1
        assert _snapshot(data_dir) == before
    assert run_cli("db", "check").returncode == 0
    assert _snapshot(data_dir) == before


def test_check_of_a_clean_database_creates_no_file(data_dir: Path) -> None:
    healthy(data_dir)
    before = _snapshot(data_dir)
    assert not [name for name in before if name.endswith(("-wal", "-shm"))]
    code, _, stderr = check()
    assert code == 0, stderr
    assert _snapshot(data_dir) == before
