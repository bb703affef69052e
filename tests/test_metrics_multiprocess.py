"""Eight processes flushing into one store at once lose nothing, SIGTERM included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant_monitoring.metrics.query import query_window
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import REPO_ROOT, subprocess_env

WORKERS = 8
# The issue asks for a minute; ASSISTANT_STRESS_SECONDS shortens it while iterating.
SECONDS = float(os.environ.get("ASSISTANT_STRESS_SECONDS", "60"))


@pytest.mark.slow
def test_concurrent_flushes_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "monitoring.db"
    processes = []
    for worker in range(WORKERS):
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.helpers.metrics_writer",
                    str(db),
                    str(SECONDS),
                    "0.1",  # flush ten times a second: constant write contention
                    str(tmp_path / f"count-{worker}"),
                ],
                cwd=REPO_ROOT,
                env=subprocess_env(),
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    time.sleep(SECONDS / 2)
    processes[0].send_signal(signal.SIGTERM)  # one dies mid-run: it must flush too
    errors = []
    for process in processes:
        _, stderr = process.communicate(timeout=SECONDS + 120)
        errors.append(stderr)
    assert processes[0].returncode == 143
    assert [p.returncode for p in processes[1:]] == [0] * (WORKERS - 1), errors
    assert not any("locked" in text or "failed" in text for text in errors), errors

    recorded = sum(int((tmp_path / f"count-{w}").read_text()) for w in range(WORKERS))
    assert recorded > WORKERS * 100
    store = MetricsStore(db)
    now = time.time()
    window = query_window(store.connect(), now - 3600, now + 60, now=now)
    totals = {
        row[0]: row[1]
        for row in store.connect().execute(
            "SELECT s.family, SUM(t.value + t.count) FROM totals t "
            "JOIN series s ON s.id = t.series_id GROUP BY s.family"
        )
    }
    store.close()
    assert window.total("assistant_pipeline_runs_total") == recorded
    duration = window.combined("assistant_pipeline_duration_seconds")
    assert duration is not None
    assert duration.count == recorded
    assert window.total("assistant_llm_tokens_total") == 3 * recorded
    assert totals["assistant_pipeline_runs_total"] == recorded
    assert totals["assistant_pipeline_duration_seconds"] == recorded
    assert window.total("assistant_metrics_errors_total") == 0
