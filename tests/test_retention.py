"""Retention of pipeline runs, alerts and samples: bounded batches, nothing else lost."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.retention import DAY, Retention
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import make_healthy, run_assistant, run_cli

NOW = 1_790_000_000.0


def fill_runs(path: Path, count: int, *, days: float) -> None:
    """``count`` runs spread evenly over the last ``days``, straight into the table."""
    store = MetricsStore(path)
    store.connect()
    store.close()
    step = days * DAY / count
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO pipeline_runs (id, started_at, finished_at, status, duration_ms, "
            "stages, classifiers) VALUES (?, ?, ?, 'success', 1.0, '[]', '{}')",
            ((f"run_{n:012x}", NOW - n * step, NOW - n * step + 1) for n in range(count)),
        )


def counts(path: Path) -> tuple[int, float]:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT count(*), min(started_at) FROM pipeline_runs").fetchone()
    return int(row[0]), float(row[1])


def test_runs_past_their_days_go_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    fill_runs(path, 60_000, days=60)
    store = MetricsStore(path, retention=Retention(runs_days=30))
    report = store.apply_retention(NOW, budget=60)
    store.close()
    assert report.done
    assert report.batches > 3, "one DELETE would hold the write lock for all of it"
    left, oldest = counts(path)
    assert 29_990 <= left <= 30_010
    assert oldest >= NOW - 30 * DAY
    assert report.deleted == {"pipeline runs": 60_000 - left}


def test_runs_past_the_row_limit_keep_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    fill_runs(path, 20_000, days=10)
    store = MetricsStore(path, retention=Retention(runs_max_rows=5_000))
    assert store.apply_retention(NOW, budget=60).done
    store.close()
    left, oldest = counts(path)
    assert left == 5_000
    assert oldest == pytest.approx(NOW - 4_999 * 10 * DAY / 20_000)


def test_a_pass_stops_at_its_budget_and_the_next_comes_soon(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    fill_runs(path, 200_000, days=60)
    store = MetricsStore(path, retention=Retention(runs_days=1))
    first = store.apply_retention(NOW, budget=0.05)
    assert not first.done
    assert 0 < first.total < 200_000
    due = float(
        store.connect().execute("SELECT value FROM meta WHERE key = 'retention_at'").fetchone()[0]
    )
    assert due == pytest.approx(NOW - 600 + 60), "a backlog brings the next pass within a minute"
    while not store.apply_retention(NOW, budget=1).done:
        pass
    store.close()
    assert counts(path)[0] == pytest.approx(200_000 / 60, abs=2)


def test_resolved_alerts_go_firing_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    store = MetricsStore(path, retention=Retention(days=30))
    conn = store.connect()
    rows = [
        ("old_resolved", "resolved", NOW - 50 * DAY, NOW - 49 * DAY),
        ("old_firing", "firing", NOW - 50 * DAY, None),
        ("recent_resolved", "resolved", NOW - 5 * DAY, NOW - 4 * DAY),
    ]
    for rule, state, started, resolved in rows:
        conn.execute(
            "INSERT INTO alerts (rule, severity, state, started_at, resolved_at, message, "
            "updated_at) VALUES (?, 'warning', ?, ?, ?, '', ?)",
            (rule, state, started, resolved, resolved or started),
        )
    report = store.apply_retention(NOW)
    kept = {row[0] for row in conn.execute("SELECT rule FROM alerts")}
    store.close()
    assert kept == {"old_firing", "recent_resolved"}
    assert report.deleted == {"resolved alerts": 1}


def test_freed_pages_go_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    fill_runs(path, 100_000, days=60)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    store = MetricsStore(path, retention=Retention(runs_days=1))
    report = store.apply_retention(NOW, budget=60)
    store.close()
    assert report.pages_freed > 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_count").fetchone()[0] < pages_before


@pytest.mark.slow
def test_a_writer_beside_a_big_pass_never_waits_long(tmp_path: Path) -> None:
    # What an `ask` does at exit (a short write transaction) while `monitor serve`
    # works through a backlog: its wait is one batch, far below its busy timeout.
    path = tmp_path / "monitoring.db"
    fill_runs(path, 400_000, days=60)
    store = MetricsStore(path, retention=Retention(runs_days=1))
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, timeout=5, isolation_level=None)
        number = 0
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            waits.append(time.perf_counter() - started)
            conn.execute(
                "INSERT INTO pipeline_runs (id, started_at, finished_at, status, duration_ms,"
                " stages, classifiers) VALUES (?, ?, ?, 'success', 1, '[]', '{}')",
                (f"new_{number}", NOW, NOW),
            )
            conn.execute("COMMIT")
            number += 1
            time.sleep(0.005)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = store.apply_retention(NOW, budget=120)
    finally:
        stop.set()
        thread.join()
        store.close()
    assert report.done
    assert report.batches > 10
    assert len(waits) > 50, "the writer got in between batches, again and again"
    # The busy timeout is 5 s; one batch is sized for ~50 ms. A wait of a second
    # would mean a batch, or the whole pass, held the lock far too long.
    assert max(waits) < 1.0, (max(waits), report.longest_hold_seconds)


def _conversations(path: Path, ages_days: dict[str, float]) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for name, age in ages_days.items():
            at = time.time() - age * DAY
            conn.execute(
                "INSERT INTO conversations (id, title, model, created_at, updated_at) "
                "VALUES (?, ?, 'claude-haiku-4-5', ?, ?)",
                (name, name, at, at),
            )
            conn.execute(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) "
                "VALUES (?, ?, 'user', 'hi', ?)",
                (f"m_{name}", name, at),
            )


def _left(path: Path) -> tuple[set[str], int]:
    with closing(sqlite3.connect(path)) as conn:
        names = {row[0] for row in conn.execute("SELECT id FROM conversations")}
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    return names, int(messages)


def test_conversations_are_kept_forever_unless_asked(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        assert run_cli("db", "migrate").returncode == 0
        path = data_dir / "assistant.db"
        _conversations(path, {"c_old": 400, "c_month": 40, "c_new": 1})
        assert run_cli("ask", "hello").returncode == 0
        names, _ = _left(path)
        assert {"c_old", "c_month", "c_new"} <= names, "no DATABASE_RETENTION_DAYS: kept"
        result = run_cli("ask", "hello again", DATABASE_RETENTION_DAYS="30")
        assert result.returncode == 0, result.stderr
        names, messages = _left(path)
    assert "c_old" not in names
    assert "c_month" not in names
    assert "c_new" in names
    assert len(names) == 3  # c_new and the two conversations the asks started
    assert messages == 1 + 2 * 2, "the deleted conversations' messages went with them"


@pytest.mark.slow
def test_two_million_runs_shrink_while_asks_keep_answering(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: 2 million runs over 60 days, retention to 30 days and 1 million
    rows, while `assistant ask` runs beside it: every ask answers (none waits past
    DATABASE_BUSY_TIMEOUT, 1 s here), and the store ends within its limits."""
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        path = data_dir / "monitoring.db"
        fill_runs(path, 2_000_000, days=60)
        store = MetricsStore(path, retention=Retention(runs_days=30, runs_max_rows=1_000_000))
        passes: list[Any] = []

        def retention() -> None:
            while not passes or not passes[-1].done:
                passes.append(store.apply_retention(NOW, budget=2))

        worker = threading.Thread(target=retention)
        worker.start()
        answers = []
        while worker.is_alive():
            # Processes of their own: asks beside the retention thread, not in its process.
            answers.append(run_assistant("ask", "hello", DATABASE_BUSY_TIMEOUT="1000"))
        worker.join()
        store.close()
    assert len(answers) >= 2, "asks ran while retention did"
    failed = [a.stderr for a in answers if a.returncode != 0]
    assert failed == [], failed[:1]
    left, oldest = counts(path)
    assert left <= 1_000_000
    assert oldest >= NOW - 30 * DAY
    assert max(p.longest_hold_seconds for p in passes) < 0.5


@pytest.mark.parametrize("stored", [str(NOW + 3650 * DAY), "inf", "nan", "not a time"])
def test_a_retention_time_from_the_future_does_not_stop_retention(
    tmp_path: Path, stored: str
) -> None:
    """Found on a bad day: a `retention_at` in the future (a clock set wrong once, a
    hand edit) stopped retention silently until that day came."""
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry
    from assistant_monitoring.metrics.runtime import MetricsRuntime

    path = tmp_path / "monitoring.db"
    fill_runs(path, 1_000, days=60)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('retention_at', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (stored,),
        )
    instrumentation = Instrumentation(MetricsRegistry())
    instrumentation.metrics.pipeline_runs.labels("success").inc()
    store = MetricsStore(path, retention=Retention(runs_days=30), clock=lambda: NOW)
    assert MetricsRuntime(instrumentation, store).flush()
    store.close()
    assert counts(path)[1] >= NOW - 30 * DAY, "the flush's retention pass ran"


KILL_SCRIPT = """
import sys
from pathlib import Path
from assistant_monitoring.metrics.retention import Retention
from assistant_monitoring.metrics.store import MetricsStore
store = MetricsStore(Path(sys.argv[1]), retention=Retention(runs_days=30), clock=lambda: {now})
store.apply_retention(budget=60)
store.close()
"""


def _kept_runs(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [row[0] for row in conn.execute("SELECT id FROM pipeline_runs ORDER BY id")]


@pytest.mark.parametrize("step", ["retention.deleting", "retention.deleted"])
def test_a_kill_at_any_batch_loses_nothing_it_should_keep(tmp_path: Path, step: str) -> None:
    """SIGKILL at each batch of a pass, then the next pass: exactly what one clean pass
    leaves, and the store intact."""
    import subprocess
    import sys

    template = tmp_path / "template.db"
    fill_runs(template, 20_000, days=60)
    clean = tmp_path / "clean.db"
    clean.write_bytes(template.read_bytes())
    clean_store = MetricsStore(clean, retention=Retention(runs_days=30), clock=lambda: NOW)
    assert clean_store.apply_retention(budget=60).done
    clean_store.close()
    expected = _kept_runs(clean)
    everything = set(_kept_runs(template))
    script = KILL_SCRIPT.format(now=NOW)
    killed_at = 0
    for k in range(1, 6):
        path = tmp_path / f"{k}.db"
        path.write_bytes(template.read_bytes())
        env = {**os.environ, "ASSISTANT_TEST_KILL_AT": f"{step}:{k}"}
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)], env=env, timeout=120, check=False
        )
        if result.returncode == 0:
            break  # fewer batches than k: the pass finished
        assert result.returncode == -9
        killed_at = k
        left = _kept_runs(path)  # intact after the kill
        assert set(expected) <= set(left) <= everything, "a kept run went, or one came back"
        rerun = subprocess.run([sys.executable, "-c", script, str(path)], timeout=120, check=False)
        assert rerun.returncode == 0
        assert _kept_runs(path) == expected
    assert killed_at >= 2, "the loop must reach several batches"


CONVERSATIONS_SCRIPT = """
import asyncio, sys
from pathlib import Path
from assistant.storage import ConversationRepository, Database

async def main() -> None:
    database = Database(Path(sys.argv[1]))
    try:
        await ConversationRepository(database).prune({cutoff}, budget=60, batch=300)
    finally:
        await database.close()

asyncio.run(main())
"""


def _conversation_rows(path: Path) -> tuple[set[str], int, int]:
    """(conversation ids, messages, orphan messages), after an integrity check."""
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {row[0] for row in conn.execute("SELECT id FROM conversations")}
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM messages WHERE conversation_id NOT IN "
            "(SELECT id FROM conversations)"
        ).fetchone()[0]
    return ids, int(messages), int(orphans)


@pytest.mark.parametrize("step", ["conversations.deleting", "conversations.deleted"])
def test_a_kill_during_conversation_retention_keeps_every_conversation_whole(
    tmp_path: Path, step: str
) -> None:
    """DATABASE_RETENTION_DAYS, SIGKILLed at each batch: no orphan message, no kept
    conversation touched, and the next pass finishes the job."""
    import asyncio
    import subprocess
    import sys

    from assistant.storage import Database

    template = tmp_path / "template.db"

    async def make() -> None:
        database = Database(template)
        await database.migrate()
        await database.close()

    asyncio.run(make())
    with closing(sqlite3.connect(template)) as conn, conn:
        for n in range(1_200):
            updated = NOW - (40 if n < 1_000 else 1) * DAY
            conn.execute(
                "INSERT INTO conversations (id, title, model, created_at, updated_at) "
                "VALUES (?, 't', 'm', ?, ?)",
                (f"c_{n:05d}", updated, updated),
            )
            conn.executemany(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) "
                "VALUES (?, ?, 'user', 'x', ?)",
                [(f"m_{n:05d}_{i}", f"c_{n:05d}", updated) for i in range(3)],
            )
    kept = {f"c_{n:05d}" for n in range(1_000, 1_200)}
    script = CONVERSATIONS_SCRIPT.format(cutoff=NOW - 30 * DAY)
    killed_at = 0
    for k in range(1, 6):
        path = tmp_path / f"{k}.db"
        path.write_bytes(template.read_bytes())
        env = {**os.environ, "ASSISTANT_TEST_KILL_AT": f"{step}:{k}"}
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)], env=env, timeout=120, check=False
        )
        if result.returncode == 0:
            break
        assert result.returncode == -9
        killed_at = k
        ids, messages, orphans = _conversation_rows(path)
        assert orphans == 0
        assert kept <= ids
        assert messages == 3 * len(ids)
        rerun = subprocess.run([sys.executable, "-c", script, str(path)], timeout=120, check=False)
        assert rerun.returncode == 0
        assert _conversation_rows(path) == (kept, 3 * len(kept), 0)
    assert killed_at >= 2, "the loop must reach several batches"
