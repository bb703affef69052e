"""Restore and backup killed (SIGKILL) at each of their steps in turn.

``ASSISTANT_TEST_KILL_AT=restore:k`` (or ``backup:k``, the shared hook in
``assistant_monitoring.killpoints``) makes the installed CLI kill itself the k-th
time it reaches a step. After each kill:

* restore: the next command (``db check``) finds both databases intact and both
  from one moment: both the old ones, or both the backup's, with no row of runs,
  usage or conversations lost or duplicated; and killed again at each step, a rerun
  of the restore finishes it.
* backup: nothing half made can be taken for a backup (by pruning, by restore, by
  the health check's "newest backup"); the backups that were there are intact; the
  next run removes the leftover and says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant_monitoring.backup import backups_in, make_backup, verify
from assistant_monitoring.inventory import managed_databases
from assistant_monitoring.settings import load_settings
from tests.conftest import run_assistant
from tests.helpers.dbfiles import (
    add_conversation,
    both_hashes,
    commit_and_die,
    files_in,
    table_hashes,
)
from tests.test_db_check import healthy

KILL = "ASSISTANT_TEST_KILL_AT"
MOST_STEPS = 40


@pytest.mark.slow
def test_restore_killed_at_every_step_leaves_the_old_state_or_the_new_one(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    made = run_assistant("db", "backup", str(tmp_path / "backups"), "--json")
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["path"])
    new = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    # The live state moves on, and a crashed writer leaves its last commit in a -wal.
    add_conversation(data_dir / "assistant.db")
    commit_and_die(data_dir / "monitoring.db", "DELETE FROM pipeline_runs WHERE rowid % 3 = 0")
    assert (data_dir / "monitoring.db-wal").stat().st_size > 0
    pristine = tmp_path / "pristine"
    shutil.copytree(data_dir, pristine)
    old = both_hashes(pristine)
    assert old != new

    killed_at = []
    for k in range(1, MOST_STEPS):
        shutil.rmtree(data_dir)
        shutil.copytree(pristine, data_dir)
        result = run_assistant("db", "restore", str(folder), **{KILL: f"restore:{k}"})
        if result.returncode == 0:
            break  # fewer steps than k: it finished
        assert result.returncode == -9, result.stderr
        killed_at.append(k)
        after = run_assistant("db", "check", "--json")
        assert after.returncode == 0, (k, after.stdout, after.stderr)
        assert json.loads(after.stdout)["ok"] is True
        assert "Traceback" not in after.stderr
        state = both_hashes(data_dir)
        assert state in (old, new), f"killed at step {k}: the databases are from two moments"
        assert not (data_dir / ".restore-journal.json").exists()
        assert not [p for p in data_dir.iterdir() if p.name.startswith(".") and "restor" in p.name]
    else:
        raise AssertionError(f"the restore never finished in {MOST_STEPS} steps")
    assert len(killed_at) >= 6, "the loop must reach every step of both databases"


@pytest.mark.slow
def test_a_rerun_of_restore_finishes_what_a_kill_left(data_dir: Path, tmp_path: Path) -> None:
    healthy(data_dir)
    made = run_assistant("db", "backup", str(tmp_path / "backups"), "--json")
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["path"])
    new = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    add_conversation(data_dir / "assistant.db")
    pristine = tmp_path / "pristine"
    shutil.copytree(data_dir, pristine)
    old = both_hashes(pristine)
    for k in range(1, MOST_STEPS):
        shutil.rmtree(data_dir)
        shutil.copytree(pristine, data_dir)
        result = run_assistant("db", "restore", str(folder), **{KILL: f"restore:{k}"})
        if result.returncode == 0:
            break
        assert result.returncode == -9
        left_a_journal = (data_dir / ".restore-journal.json").exists()
        rerun = run_assistant("db", "restore", str(folder))
        assert rerun.returncode == 0, (k, rerun.stderr)
        # (Killed after its last step, a restore has nothing left to finish.)
        assert ("interrupted restore" in rerun.stderr) == left_a_journal, rerun.stderr
        assert both_hashes(data_dir) == new
        # Whatever the kill left was either the old files (kept aside) or the new ones.
        kept = sorted(data_dir.glob("assistant.db.before-restore-*"))
        assert kept, k
        assert table_hashes(kept[0]) in (old["assistant.db"], new["assistant.db"])
    else:
        raise AssertionError(f"the restore never finished in {MOST_STEPS} steps")


@pytest.mark.slow
def test_backup_killed_at_every_step_leaves_nothing_taken_for_a_backup(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    databases = managed_databases(load_settings().settings)
    destination = tmp_path / "backups"
    killed_at = []
    for k in range(1, MOST_STEPS):
        shutil.rmtree(destination, ignore_errors=True)
        good = make_backup(databases, destination, busy_timeout_ms=5000, now=1_790_000_000).folder
        result = run_assistant(
            "db", "backup", str(destination), "--keep", "1", **{KILL: f"backup:{k}"}
        )
        if result.returncode == 0:
            break
        assert result.returncode == -9, result.stderr
        killed_at.append(k)
        found = backups_in(destination)
        assert found, "a kill never leaves no backup at all"
        for folder in found:
            verify(folder)  # whatever is listed as a backup is a whole one
        for other in destination.iterdir():
            if other.is_dir() and other not in found:
                refused = run_assistant("db", "restore", str(other))
                assert refused.returncode == 1, (k, other)
        if good not in found:
            assert len(found) == 1, "the old one goes only after the new one is whole"
        nxt = run_assistant("db", "backup", str(destination), "--keep", "1")
        assert nxt.returncode == 0, (k, nxt.stderr)
        leftovers = [p for p in destination.iterdir() if p.is_dir() and p.name.startswith(".")]
        assert leftovers == [], (k, leftovers)
        (only,) = backups_in(destination)
        verify(only)
    else:
        raise AssertionError(f"the backup never finished in {MOST_STEPS} steps")
    assert len(killed_at) >= 5, killed_at


@pytest.mark.parametrize("signal", ["TERM", "INT"])
def test_sigterm_or_ctrl_c_while_copying_changes_nothing(
    data_dir: Path, tmp_path: Path, signal: str
) -> None:
    healthy(data_dir)
    made = run_assistant("db", "backup", str(tmp_path / "backups"), "--json")
    folder = Path(json.loads(made.stdout)["path"])
    add_conversation(data_dir / "assistant.db")
    before = files_in(data_dir)
    # Step 2: the first copy is staged beside its database, the second not yet.
    result = run_assistant("db", "restore", str(folder), **{KILL: f"restore:2:{signal}"})
    assert result.returncode == (143 if signal == "TERM" else 130), result.stderr
    assert "Traceback" not in result.stderr
    assert files_in(data_dir) == before, "the copies made so far were removed"


def test_a_restore_under_way_makes_the_next_command_wait_then_refuse(
    data_dir: Path, tmp_path: Path
) -> None:
    import fcntl
    import os

    healthy(data_dir)
    made = run_assistant("db", "backup", str(tmp_path / "backups"), "--json")
    folder = Path(json.loads(made.stdout)["path"])
    new = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    add_conversation(data_dir / "assistant.db")
    killed = run_assistant("db", "restore", str(folder), **{KILL: "restore:5"})
    assert killed.returncode == -9
    assert (data_dir / ".restore-journal.json").exists()
    before = files_in(data_dir)
    lock = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as if that restore still ran
        waiting = run_assistant("db", "status", DATABASE_BUSY_TIMEOUT="1000")
        assert waiting.returncode == 1
        (line,) = waiting.stderr.strip().splitlines()
        assert "a restore is under way" in line
        assert files_in(data_dir) == before
    finally:
        os.close(lock)
    after = run_assistant("db", "status")
    assert after.returncode == 0, after.stderr
    assert "interrupted restore" in after.stderr
    assert both_hashes(data_dir) == new


def test_a_journal_that_cannot_be_used_is_named(data_dir: Path) -> None:
    healthy(data_dir)
    (data_dir / ".restore-journal.json").write_text('{"made_by": "someone else"}')
    result = run_assistant("db", "check")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert ".restore-journal.json" in line
    assert "When files break" in line


def test_a_journal_that_cannot_be_finished_yet_is_kept_for_the_next_command(
    data_dir: Path, tmp_path: Path
) -> None:
    import subprocess

    from tests.conftest import installed_assistant, subprocess_env
    from tests.helpers.readonly import read_only_directory

    healthy(data_dir)
    made = run_assistant("db", "backup", str(tmp_path / "backups"), "--json")
    folder = Path(json.loads(made.stdout)["path"])
    new = {name: table_hashes(folder / name) for name in ("assistant.db", "monitoring.db")}
    killed = run_assistant("db", "restore", str(folder), **{KILL: "restore:5"})
    assert killed.returncode == -9
    before = files_in(data_dir)
    with read_only_directory(data_dir) as prefix:
        stuck = subprocess.run(
            [*prefix, installed_assistant(), "db", "check"],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
            check=False,
        )
    assert stuck.returncode == 1, stuck.stdout
    (line,) = stuck.stderr.strip().splitlines()
    assert "could not be finished" in line
    assert files_in(data_dir) == before, "the journal and the files wait for the next try"
    after = run_assistant("db", "check")
    assert after.returncode == 0, after.stderr
    assert both_hashes(data_dir) == new
