"""`assistant db backup` on a bad day: pruning, damaged sources, full disks, leftovers.

Each test is something an operator met (issue 20): a backup that deleted the copy it
had just made, backed up a damaged database and then pruned the good ones, blamed the
source for a full destination, skipped a symlink loop with exit 0, or left a
``.partial`` folder behind that no run ever cleaned.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant_monitoring.backup import backups_in, make_backup, verify
from assistant_monitoring.inventory import managed_databases
from assistant_monitoring.settings import load_settings
from tests.conftest import installed_assistant, run_assistant, subprocess_env
from tests.helpers.dbfiles import corrupt_a_table_page
from tests.helpers.readonly import require_mount_namespaces
from tests.test_db_check import healthy

KILL = "ASSISTANT_TEST_KILL_AT"


def backup(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_assistant("db", "backup", *args, **env)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_keep_deletes_neither_the_new_backup_nor_folders_it_did_not_make(data_dir: Path) -> None:
    healthy(data_dir)
    destination = data_dir / "elsewhere"
    first = backup(str(destination), "--json")
    assert first.returncode == 0, first.stderr
    made = Path(json.loads(first.stdout)["path"])
    # An operator pins one backup by renaming it: it sorts after every timestamp.
    pinned = destination / "assistant-backup-zz-pinned"
    made.rename(pinned)
    # A copy of a backup under a later timestamp name: a valid manifest, but not ours.
    copied = destination / "assistant-backup-29990101T000000Z"
    shutil.copytree(pinned, copied)
    # Something else that merely starts with the prefix.
    stranger = destination / "assistant-backup-notes"
    stranger.mkdir()
    (stranger / "manifest.json").write_text("{}")

    result = backup(str(destination), "--keep", "1")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("backed up to ")
    folder = Path(line.removeprefix("backed up to ").split(" (")[0])
    assert folder.is_dir(), "the success message names the backup, which must still be there"
    verify(folder)
    assert pinned.is_dir()
    assert copied.is_dir()
    assert stranger.is_dir()
    assert (stranger / "manifest.json").read_text() == "{}"


def test_keep_prunes_only_our_older_backups(data_dir: Path) -> None:
    healthy(data_dir)
    databases = managed_databases(load_settings().settings)
    destination = data_dir / "elsewhere"
    old = [
        make_backup(databases, destination, busy_timeout_ms=5000, now=1_790_000_000 + n).folder
        for n in range(3)
    ]
    result = backup(str(destination), "--keep", "2", "--json")
    assert result.returncode == 0, result.stderr
    newest = Path(json.loads(result.stdout)["path"])
    assert [p.name for p in backups_in(destination)] == [old[-1].name, newest.name]


def test_a_damaged_source_is_refused_by_name_and_nothing_is_pruned(data_dir: Path) -> None:
    healthy(data_dir)
    databases = managed_databases(load_settings().settings)
    destination = data_dir / "elsewhere"
    good = [
        make_backup(databases, destination, busy_timeout_ms=5000, now=1_790_000_000 + n).folder
        for n in range(2)
    ]
    store = data_dir / "monitoring.db"
    corrupt_a_table_page(store, "pipeline_runs")
    damaged = store.read_bytes()

    result = backup(str(destination), "--keep", "1")
    assert result.returncode == 1, result.stdout
    line = one_line(result.stderr)
    assert str(store) in line
    assert "damaged" in line
    assert sorted(p for p in destination.iterdir() if p.is_dir()) == good, (
        "no new folder, no leftover, none pruned"
    )
    for folder in good:
        verify(folder)
    assert store.read_bytes() == damaged


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_symlink_where_a_database_should_be_is_refused_not_skipped(
    data_dir: Path, kind: str
) -> None:
    healthy(data_dir)
    store = data_dir / "monitoring.db"
    store.unlink()
    store.symlink_to(store if kind == "loop" else data_dir / "gone.db")
    for command in (["db", "backup"], ["db", "vacuum"]):
        result = run_assistant(*command)
        assert result.returncode == 1, (command, result.stdout)
        line = one_line(result.stderr)
        assert str(store) in line
        assert "symbolic link" in line
    assert not (data_dir / "backups").exists(), "refused before anything was made"


def test_a_full_destination_is_named_as_full_and_the_source_not_blamed(data_dir: Path) -> None:
    require_mount_namespaces()
    healthy(data_dir)
    destination = data_dir.parent / "small-disk"
    destination.mkdir()
    script = 'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"'
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(destination),
            installed_assistant(),
            "db",
            "backup",
            str(destination),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    line = one_line(result.stderr)
    assert str(destination) in line
    assert "full" in line
    assert "metrics store" not in line
    assert "conversations database" not in line
    assert not list(destination.iterdir())  # the tmpfs went with its namespace


def test_a_killed_backup_leaves_nothing_taken_for_a_backup_and_the_next_run_cleans_it(
    data_dir: Path,
) -> None:
    healthy(data_dir)
    destination = data_dir / "elsewhere"
    # Killed once both databases are copied, before the manifest: a half-made folder.
    killed = backup(str(destination), **{KILL: "backup:3"})
    assert killed.returncode == -9, killed.stderr
    (leftover,) = (p for p in destination.iterdir() if p.is_dir())
    assert leftover.name.startswith(".")
    assert leftover.name.endswith(".partial")
    assert backups_in(destination) == []
    refused = run_assistant("db", "restore", str(leftover))
    assert refused.returncode == 1
    assert "not a finished backup" in one_line(refused.stderr)
    # A folder that only looks like our leftover is not ours: it stays.
    foreign = destination / ".assistant-backup-20200101T000000Z.partial"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")

    result = backup(str(destination))
    assert result.returncode == 0, result.stderr
    assert f"removed {leftover}" in result.stdout
    assert "interrupted" in result.stdout
    assert not leftover.exists()
    assert (foreign / "notes.txt").read_text() == "mine"
    assert len(backups_in(destination)) == 1


def test_a_backup_under_way_is_not_taken_for_a_leftover(data_dir: Path) -> None:
    healthy(data_dir)
    destination = data_dir / "elsewhere"
    killed = backup(str(destination), **{KILL: "backup:3"})
    assert killed.returncode == -9
    (leftover,) = (p for p in destination.iterdir() if p.is_dir())
    # A backup under way holds DEST's lock (on the folder itself): pretend to be one.
    lock = os.open(destination, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = backup(str(destination))
        assert result.returncode == 1
        assert "another backup" in one_line(result.stderr)
        assert leftover.is_dir()
    finally:
        os.close(lock)
    assert backups_in(destination) == []


def test_a_partial_folder_name_is_refused_by_restore_even_with_a_manifest(data_dir: Path) -> None:
    healthy(data_dir)
    destination = data_dir / "elsewhere"
    made = backup(str(destination), "--json")
    assert made.returncode == 0
    folder = Path(json.loads(made.stdout)["path"])
    hidden = destination / f".{folder.name}.partial"
    folder.rename(hidden)
    live = (data_dir / "monitoring.db").read_bytes()
    result = run_assistant("db", "restore", str(hidden))
    assert result.returncode == 1
    assert "not a finished backup" in one_line(result.stderr)
    assert (data_dir / "monitoring.db").read_bytes() == live
    assert not list(data_dir.glob("*.before-restore-*"))


def test_a_backup_checks_its_copy_before_it_says_so(data_dir: Path) -> None:
    healthy(data_dir)
    result = backup("--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["made_by"] == "assistant db backup"
    assert document["name"] == Path(document["path"]).name
    for entry in document["files"]:
        assert entry["check"] == "quick_check ok"
    assert os.environ.get(KILL) is None
