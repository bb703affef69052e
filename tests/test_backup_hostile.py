"""A hostile operator's second try at backup, restore and check (issue 20, round 2).

Each test is something that try found: JSON nested a million deep where a manifest or
the restore journal is read, a journal naming files that are not this run's
databases, leftovers and check folders holding a user's files, a backup folder whose
database is a directory, manifest text that forges lines.
"""

from __future__ import annotations

import json
import os
import shutil
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


# -- 2, 3. a journal naming other files, or holding values out of range ------------------


def killed_mid_restore(data_dir: Path, tmp_path: Path) -> dict[str, object]:
    """A restore killed while swapping: its journal, as a document."""
    healthy(data_dir)
    folder = made(data_dir, tmp_path / "backups")
    killed = run_assistant("db", "restore", str(folder), ASSISTANT_TEST_KILL_AT="restore:5")
    assert killed.returncode == -9, killed.stderr
    document: dict[str, object] = json.loads((data_dir / JOURNAL).read_text())
    return document


def refused_journal(data_dir: Path, *watched: Path, **env: str) -> None:
    before = {path: files_in(path) for path in (data_dir, *watched)}
    result = run_assistant("db", "check", **env)
    assert result.returncode == 1, result.stdout
    line = one_line(result.stderr)
    assert JOURNAL in line, line
    assert "cannot be used" in line, line
    assert {path: files_in(path) for path in (data_dir, *watched)} == before


def test_a_journal_naming_another_file_touches_nothing(data_dir: Path, tmp_path: Path) -> None:
    document = killed_mid_restore(data_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "precious.db"
    victim.write_bytes(b"the user's file")
    swaps = document["swaps"]
    assert isinstance(swaps, list)
    old = Path(swaps[0]["target"])
    staged = Path(swaps[0]["incoming"])
    incoming = elsewhere / f".precious.db.restoring-{staged.name.rsplit('-', 1)[-1]}"
    shutil.copy(staged, incoming)
    swaps[0]["target"] = str(victim)
    swaps[0]["incoming"] = str(incoming)
    swaps[0]["aside"] = str(elsewhere / f"precious.db.before-restore-{old.name}")
    (data_dir / JOURNAL).write_text(json.dumps(document))
    refused_journal(data_dir, elsewhere)
    assert victim.read_bytes() == b"the user's file"


def test_a_journal_in_a_copied_data_dir_does_not_touch_the_original(
    data_dir: Path, tmp_path: Path
) -> None:
    killed_mid_restore(data_dir, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    refused_journal(copy, data_dir, ASSISTANT_DATA_DIR=str(copy))


def test_journal_values_out_of_range_are_named(data_dir: Path, tmp_path: Path) -> None:
    document = killed_mid_restore(data_dir, tmp_path)
    text = json.dumps(document)
    bad_pid = json.dumps({**document, "pid": 0}).replace('"pid": 0', '"pid": 1e999')
    swaps = json.loads(text)["swaps"]
    swaps[0]["target"] += "\u0000"
    null = json.dumps({**document, "swaps": swaps})
    for bad in (bad_pid, null):
        (data_dir / JOURNAL).write_text(bad)
        refused_journal(data_dir)


# -- 4. db check's private folders -----------------------------------------------------------


def test_db_check_removes_only_its_own_leftover_links(data_dir: Path) -> None:
    healthy(data_dir)
    database = data_dir / "assistant.db"
    theirs = data_dir / ".assistant.db.check-notes"
    theirs.mkdir()
    (theirs / "assistant.db").write_bytes(b"a user's copy, not a link")
    (theirs / "notes.txt").write_text("keep me")
    ours = data_dir / ".assistant.db.check-abc123"
    ours.mkdir()
    os.link(database, ours / "assistant.db")
    empty = data_dir / ".assistant.db.check-empty"
    empty.mkdir()
    result = run_assistant("db", "check")
    assert result.returncode == 0, result.stderr
    assert (theirs / "notes.txt").read_text() == "keep me"
    assert (theirs / "assistant.db").read_bytes() == b"a user's copy, not a link"
    assert not ours.exists()
    assert not empty.exists()


# -- 5. leftovers in DEST ---------------------------------------------------------------------


def test_a_leftover_whose_mark_is_not_its_own_or_with_user_files_is_left(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    destination = tmp_path / "backups"
    destination.mkdir()
    mark = {"made_by": "assistant db backup", "name": "", "pid": 1}
    # A mark naming another folder (copied in), with the user's file.
    copied = destination / ".assistant-backup-20200101T000000Z.partial"
    copied.mkdir()
    (copied / ".made-by-assistant").write_text(
        json.dumps({**mark, "name": "assistant-backup-20190101T000000Z"})
    )
    (copied / "assistant.db").write_text("mine")
    # Its own mark, but a file a backup never writes.
    extra = destination / ".assistant-backup-20200102T000000Z.deleting"
    extra.mkdir()
    (extra / ".made-by-assistant").write_text(
        json.dumps({**mark, "name": "assistant-backup-20200102T000000Z"})
    )
    (extra / "thesis.tex").write_text("years of work")
    # Truly ours: its own mark, a copy cut off.
    ours = destination / ".assistant-backup-20200103T000000Z.partial"
    ours.mkdir()
    (ours / ".made-by-assistant").write_text(
        json.dumps({**mark, "name": "assistant-backup-20200103T000000Z"})
    )
    (ours / "assistant.db").write_text("half")
    (ours / "assistant.db-journal").write_text("half")
    result = run_assistant("db", "backup", str(destination))
    assert result.returncode == 0, result.stderr
    assert (copied / "assistant.db").read_text() == "mine"
    assert (extra / "thesis.tex").read_text() == "years of work"
    assert not ours.exists()
    assert f"removed {ours}" in result.stdout
    for kept in (copied, extra):
        assert result.stderr.count(str(kept)) == 1, result.stderr


# -- 6. a database entry that is a directory --------------------------------------------------


def test_a_backup_whose_database_is_a_directory_is_never_pruned(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    destination = tmp_path / "backups"
    old = made(data_dir, destination)
    (old / "assistant.db").unlink()
    (old / "assistant.db").mkdir()
    (old / "assistant.db" / "keep.txt").write_text("the user's")
    result = run_assistant("db", "backup", str(destination), "--keep", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("backed up to "), result.stdout
    assert (old / "assistant.db" / "keep.txt").read_text() == "the user's"
    assert not list(destination.glob(".*deleting"))


# -- 7. manifest text shown as text -------------------------------------------------------------


def test_manifest_text_cannot_forge_lines_or_colour_the_terminal(
    data_dir: Path, tmp_path: Path
) -> None:
    healthy(data_dir)
    folder = made(data_dir, tmp_path / "backups")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["created_at"] = "2026-01-01)\nrestored from /somewhere/else (made 2020"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run_assistant("db", "restore", str(folder))
    assert result.returncode == 0, result.stderr
    assert "\nrestored from /somewhere" not in result.stdout, result.stdout
    manifest["format"] = 99
    manifest["version"] = "\x1b[31m9.9\x1b[0m"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused = run_assistant("db", "restore", str(folder))
    assert refused.returncode == 1, refused.stdout
    assert "\x1b" not in refused.stderr, refused.stderr
