"""A hostile operator's second try at backup, restore and check (issue 20, round 2).

Each test is something that try found: JSON nested a million deep where a manifest or
the restore journal is read, a journal naming files that are not this run's
databases, leftovers and check folders holding a user's files, a backup folder whose
database is a directory, manifest text that forges lines.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_assistant
from tests.helpers.dbfiles import files_in
from tests.test_db_check import healthy

DEEP = "[" * 1_000_000
JOURNAL = ".restore-journal.json"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert "unexpected" not in stderr, stderr
    return lines[0]


def made(data_dir: Path, destination: Path) -> Path:
    result = run_assistant("db", "backup", str(destination), "--json")
    assert result.returncode == 0, result.stderr
    return Path(json.loads(result.stdout)["path"])


# -- 1. JSON nested too deeply ------------------------------------------------------------


def test_a_deeply_nested_manifest_in_dest_is_not_ours_and_backup_still_succeeds(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    destination = tmp_path / "backups"
    old = made(data_dir, destination)
    (old / "manifest.json").write_text(DEEP)
    result = run_assistant("db", "backup", str(destination), "--keep", "1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("backed up to "), result.stdout
    assert old.is_dir()
    assert (old / "manifest.json").read_text() == DEEP


def test_a_deeply_nested_manifest_is_named_by_restore_and_check(data_dir: Path) -> None:
    healthy(data_dir)
    folder = made(data_dir, data_dir / "backups")
    (folder / "manifest.json").write_text(DEEP)
    before = files_in(data_dir)
    restored = run_assistant("db", "restore", str(folder))
    assert restored.returncode == 1, restored.stdout
    line = one_line(restored.stderr)
    assert "manifest.json" in line, line
    assert "cannot be used" in line, line
    assert files_in(data_dir) == before
    checked = run_assistant("db", "check")
    assert "Traceback" not in checked.stderr, checked.stderr
    assert "unexpected" not in checked.stderr, checked.stderr
    assert checked.returncode in (0, 1), checked.stderr


def test_a_deeply_nested_journal_is_named_by_every_command(data_dir: Path) -> None:
    healthy(data_dir)
    (data_dir / JOURNAL).write_text(DEEP)
    before = files_in(data_dir)
    for command in (("db", "check"), ("db", "backup", str(data_dir / "b")), ("config", "check")):
        result = run_assistant(*command)
        assert result.returncode == 1, (command, result.stdout)
        line = one_line(result.stderr)
        assert JOURNAL in line, line
        assert "cannot be used" in line, line
    assert files_in(data_dir) == before
