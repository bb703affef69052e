"""Many CLI processes log at once: no line lost, duplicated, interleaved or truncated."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

WORKERS = 8
LINES = 5_000


@pytest.mark.slow
def test_eight_processes_through_a_small_rotation_size(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    start_at = time.time() + 2.0  # every worker imports first, then all write at once
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.log_writer",
                str(log_dir),
                str(worker),
                str(LINES),
                str(256 * 1024),  # ~40 rotations over the run
                "1000",  # enough files that rotation never deletes one
                str(start_at),
            ],
            cwd=REPO_ROOT,
            env=subprocess_env(),
        )
        for worker in range(WORKERS)
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0

    files = sorted(log_dir.glob("assistant.jsonl*"))
    assert len(files) > 10, "the test must exercise rotation"
    seen: set[tuple[int, int]] = set()
    total = 0
    for file in files:
        data = file.read_bytes()
        assert data.endswith(b"\n"), f"{file.name} ends with a truncated line"
        for raw in data.split(b"\n")[:-1]:
            line = json.loads(raw)  # raises on an interleaved or truncated line
            key = (line["worker"], line["seq"])
            assert key not in seen, f"duplicated line {key}"
            seen.add(key)
            total += 1
    assert total == WORKERS * LINES
    assert seen == {(w, s) for w in range(WORKERS) for s in range(LINES)}
    for file in files:
        # A file may exceed the limit by the lines written while its rotation was decided.
        assert file.stat().st_size < 256 * 1024 + 64 * 1024
