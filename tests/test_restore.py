"""`assistant db restore`: everything is checked before anything changes.

Each test is a restore an operator saw fail after it had already changed the live
files (issue 20): a backup from a newer schema, a manifest with swapped or duplicate
roles, names that lead out of the folder, a disk that filled halfway. Each must now be
refused in one line with the live files byte for byte as they were and nothing moved
aside. And the files a restore keeps keep SQLite's pairing, and a symlinked
``DATABASE_PATH`` stays a symlink.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import installed_assistant, run_cli, subprocess_env
from tests.helpers.dbfiles import (
    add_conversation,
    both_hashes,
    commit_and_die,
    files_in,
    from_the_future,
    reseal,
    rewrite_manifest,
    table_hashes,
)
from tests.helpers.readonly import require_mount_namespaces
from tests.test_db_check import healthy


def make_backup(data_dir: Path, destination: Path | None = None) -> Path:
    """A fresh backup of ``data_dir``'s databases (by the CLI), then one more conversation."""
    args = [str(destination)] if destination is not None else []
    result = run_cli("db", "backup", "--json", *args)
    assert result.returncode == 0, result.stderr
    add_conversation(data_dir / "assistant.db")  # the live state moves on
    return Path(json.loads(result.stdout)["path"])


def refused(folder: Path, data_dir: Path, *words: str, **env: str) -> str:
    """Restore ``folder``: refused in one line holding ``words``, nothing changed."""
    before = files_in(data_dir)
    result = run_cli("db", "restore", str(folder), timeout=30, **env)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert files_in(data_dir) == before, "the live files changed"
    assert not list(data_dir.glob("*.before-restore-*"))
    assert not [p for p in data_dir.iterdir() if "restor" in p.name]
    return lines[0]


@pytest.mark.parametrize("name", ["assistant.db", "monitoring.db"])
def test_a_backup_from_a_newer_schema_is_refused_before_anything_changes(
    data_dir: Path, name: str
) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    from_the_future(folder / name)
    reseal(folder, name)  # as a newer version would have written it: consistent
    line = refused(folder, data_dir, name, "newer", "upgrade")
    assert "m999_future" in line


def test_swapped_roles_are_refused(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)

    def swap(document: dict[str, Any]) -> None:
        first, second = document["files"]
        first["role"], second["role"] = second["role"], first["role"]

    rewrite_manifest(folder, swap)
    refused(folder, data_dir, "role")


def test_swapped_files_are_refused_by_their_contents(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    (folder / "assistant.db").rename(folder / "swap")
    (folder / "monitoring.db").rename(folder / "assistant.db")
    (folder / "swap").rename(folder / "monitoring.db")
    reseal(folder, "assistant.db")
    reseal(folder, "monitoring.db")
    refused(folder, data_dir, "not a conversations database")


def test_a_role_named_twice_is_refused(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)

    def duplicate(document: dict[str, Any]) -> None:
        for entry in document["files"]:
            entry["role"] = "conversations"

    rewrite_manifest(folder, duplicate)
    refused(folder, data_dir, "conversations", "twice")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(files="all of them"),
        lambda d: d["files"][0].update(bytes=-1),
        lambda d: d["files"][0].update(sha256="0" * 63),
        lambda d: d.pop("version"),
        lambda d: d["files"][0].update(rows="many"),
    ],
    ids=["files-not-a-list", "negative-size", "short-sha", "no-version", "rows-not-counts"],
)
def test_a_manifest_of_the_wrong_shape_is_refused(data_dir: Path, change: Any) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    rewrite_manifest(folder, change)
    refused(folder, data_dir, "manifest.json")


def test_a_huge_manifest_is_refused_before_it_is_read(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    rewrite_manifest(folder, lambda d: d.update(padding="x" * 50_000_000))
    refused(folder, data_dir, "manifest.json", "MiB")


def test_a_manifest_that_is_a_fifo_never_blocks(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    (folder / "manifest.json").unlink()
    os.mkfifo(folder / "manifest.json")
    refused(folder, data_dir, "manifest.json", "not a regular file")


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink-out"])
def test_names_that_lead_out_of_the_folder_are_refused(
    data_dir: Path, tmp_path: Path, how: str
) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    outside = tmp_path / "outside.db"
    (folder / "monitoring.db").rename(outside)
    if how == "symlink-out":
        (folder / "monitoring.db").symlink_to(outside)
        words = ["symbolic link"]
    else:
        name = "../../../outside.db" if how == "dot-dot" else str(outside)
        assert (folder / name).resolve() == outside.resolve()

        def point_out(document: dict[str, Any]) -> None:
            for entry in document["files"]:
                if entry["role"] == "metrics":
                    entry["name"] = name

        rewrite_manifest(folder, point_out)
        words = ["inside"]
    refused(folder, data_dir, *words)


def test_a_disk_that_fills_halfway_changes_nothing(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir, data_dir.parent / "backups")
    sizes = {p.name: p.stat().st_size for p in folder.glob("*.db")}
    assert sizes["assistant.db"] < 400_000 < sizes["monitoring.db"]
    before = files_in(data_dir)

    def small_files() -> None:  # the first copy fits, the second does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    result = subprocess.run(
        [installed_assistant(), "db", "restore", str(folder)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
        preexec_fn=small_files,
    )
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(data_dir) in lines[0]
    assert "nothing was changed" in lines[0]
    assert files_in(data_dir) == before
    assert not [p for p in data_dir.iterdir() if "restor" in p.name]


def test_too_little_free_space_is_refused_before_anything_changes(data_dir: Path) -> None:
    require_mount_namespaces()
    healthy(data_dir)
    folder = make_backup(data_dir, data_dir.parent / "backups")
    used = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    size_k = used // 1024 + 300  # less room than the restored monitoring.db needs
    script = (
        'cp -a "$0" "$0.copy" && mount -t tmpfs -o size=' + str(size_k) + 'k tmpfs "$0" && '
        'cp -a "$0.copy/." "$0" && rm -rf "$0.copy" && { "$@"; echo "exit=$?"; ls -a "$0"; }'
    )
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(data_dir),
            installed_assistant(),
            "db",
            "restore",
            str(folder),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert "exit=1" in result.stdout, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(data_dir) in line
    assert "free" in line
    listing = result.stdout.split("exit=1", 1)[1].split()
    assert not [name for name in listing if "restor" in name], listing


def test_the_kept_copy_opened_alone_has_every_committed_row(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    live = data_dir / "assistant.db"
    commit_and_die(
        live,
        "INSERT INTO conversations (id, title, model, created_at, updated_at) "
        "VALUES ('only_in_the_wal', 't', 'm', 1, 1)",
    )
    assert (data_dir / "assistant.db-wal").stat().st_size > 0
    expected = table_hashes(live)  # read through the WAL: every committed row
    result = run_cli("db", "restore", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    moved = next(
        d["moved_aside"]
        for d in json.loads(result.stdout)["databases"]
        if d["role"] == "conversations"
    )
    kept = Path(moved[0])
    assert kept.name.startswith("assistant.db.before-restore-")
    assert Path(f"{kept}-wal") in {Path(p) for p in moved}, "the WAL keeps SQLite's pairing"
    with closing(sqlite3.connect(kept)) as conn:
        row = conn.execute("SELECT title FROM conversations WHERE id = 'only_in_the_wal'")
        assert row.fetchone() == ("t",)
    assert table_hashes(kept) == expected


def test_a_symlinked_database_path_is_restored_where_it_points(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    disk = tmp_path / "big-disk"
    disk.mkdir()
    real = disk / "assistant.db"
    (data_dir / "assistant.db").rename(real)
    (data_dir / "assistant.db").symlink_to(real)
    folder = make_backup(data_dir)
    expected = table_hashes(folder / "assistant.db")
    result = run_cli("db", "restore", str(folder))
    assert result.returncode == 0, result.stderr
    link = data_dir / "assistant.db"
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert table_hashes(real) == expected
    assert [p.name for p in disk.glob("assistant.db.before-restore-*")], "kept beside the file"
    assert str(real) in result.stdout
    assert run_cli("db", "check").returncode == 0


def test_a_restore_round_trip_keeps_every_row(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    expected = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    result = run_cli("db", "restore", str(folder))
    assert result.returncode == 0, result.stderr
    assert both_hashes(data_dir) == expected
    assert not (data_dir / ".restore-journal.json").exists()
    check = run_cli("db", "check")
    assert check.returncode == 0, check.stdout


def test_damaged_live_databases_are_replaced_and_kept_as_they_were(data_dir: Path) -> None:
    healthy(data_dir)
    folder = make_backup(data_dir)
    expected = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    junk = b"\x00not a database" * 1000
    (data_dir / "monitoring.db").write_bytes(junk)
    (data_dir / "assistant.db").write_bytes(b"")  # cut to nothing by a full disk
    result = run_cli("db", "restore", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    assert both_hashes(data_dir) == expected
    kept = {
        Path(d["moved_aside"][0]).name.split(".before-restore-")[0]: Path(d["moved_aside"][0])
        for d in json.loads(result.stdout)["databases"]
    }
    assert kept["monitoring.db"].read_bytes() == junk, "the damaged file is kept, unchanged"
    assert kept["assistant.db"].read_bytes() == b""


def test_a_second_restore_at_once_is_refused(data_dir: Path) -> None:
    import fcntl

    healthy(data_dir)
    folder = make_backup(data_dir)
    lock = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a restore under way holds it
        refused(folder, data_dir, "a restore is under way")
    finally:
        os.close(lock)
    assert run_cli("db", "restore", str(folder)).returncode == 0
