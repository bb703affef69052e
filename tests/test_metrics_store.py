"""monitoring.db: merging deltas from many processes, windows, retention, schema."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from assistant_monitoring.metrics.exposition import render_exposition
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.query import query_window, segments
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import DAY, HOUR, MINUTE, MetricsStore, StoreError

NOW = 1_795_000_000.0  # a fixed instant in 2026, minute-aligned enough for the tests


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def flush(path: Path, clock: Clock, record) -> None:  # type: ignore[no-untyped-def]
    """One short-lived 'process': record, then flush into the store."""
    inst = Instrumentation(MetricsRegistry())
    record(inst)
    store = MetricsStore(path, clock=clock)
    runtime = MetricsRuntime(inst, store)
    assert runtime.flush()
    store.close()


def read(path: Path, start: float, end: float, now: float):  # type: ignore[no-untyped-def]
    store = MetricsStore(path)
    try:
        return query_window(store.connect(), start, end, now=now)
    finally:
        store.close()


def test_processes_merge_counters_histograms_and_gauges(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    clock = Clock()

    def first(inst: Instrumentation) -> None:
        for value in (0.1, 0.2, 0.3):
            inst.metrics.pipeline_duration.observe(value)
            inst.metrics.pipeline_runs.labels("success").inc()
        inst.metrics.process_memory.labels().set(100)

    def second(inst: Instrumentation) -> None:
        for value in (1.0, 2.0):
            inst.metrics.pipeline_duration.observe(value)
        inst.metrics.pipeline_runs.labels("failure").inc(2)
        inst.metrics.process_memory.labels().set(200)

    flush(path, clock, first)
    clock.now += 30
    flush(path, clock, second)
    window = read(path, NOW - 3600, NOW + 60, NOW + 60)
    assert window.total("assistant_pipeline_runs_total") == 5
    assert window.total("assistant_pipeline_runs_total", status="failure") == 2
    duration = window.combined("assistant_pipeline_duration_seconds")
    assert duration is not None
    assert duration.count == 5
    assert duration.sum == pytest.approx(3.6)
    assert (duration.min, duration.max) == (0.1, 2.0)
    assert duration.quantile(0.5) == pytest.approx(0.3, rel=0.01)
    (memory,) = window.family("process_resident_memory_bytes")
    assert memory.value == 200


def test_window_covers_minutes_hours_and_days_exactly(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    clock = Clock()
    # One run per hour for 10 days.
    for hour in range(240):
        clock.now = NOW - hour * HOUR
        flush(path, clock, lambda inst: inst.metrics.pipeline_runs.labels("success").inc())
    now = NOW + 1
    for days in (1, 3, 7, 10):
        window = read(path, now - days * DAY, now, now)
        assert window.total("assistant_pipeline_runs_total") == pytest.approx(days * 24, abs=1)
    window = read(path, now - 30 * MINUTE, now, now)
    assert window.total("assistant_pipeline_runs_total") == 1


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (NOW - 3600, NOW),
        (NOW - 30 * DAY, NOW),
        (NOW - 7 * DAY - 1234, NOW - 77),
        (NOW - 90, NOW - 30),
        (NOW - 2 * HOUR - 5 * MINUTE, NOW + 7 * MINUTE),
    ],
)
def test_segments_tile_the_window_without_overlap(start: float, end: float) -> None:
    pieces = segments(int(start), int(end), now=int(NOW))
    covered = sorted((low, high) for _, low, high in pieces)
    for (_, high), (low, _) in itertools.pairwise(covered):
        assert high == low, "pieces must touch"
    assert covered[0][0] <= start
    assert covered[-1][1] >= end
    for resolution, low, high in pieces:
        assert low % resolution == 0
        assert high % resolution == 0
    assert len(pieces) <= 5


def test_retention_deletes_old_rows_but_counters_stay_monotonic(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    clock = Clock(NOW - 40 * DAY)
    flush(path, clock, lambda inst: inst.metrics.pipeline_runs.labels("success").inc(7))
    store = MetricsStore(path, clock=clock)
    before = render_exposition(store.connect())
    assert 'assistant_pipeline_runs_total{status="success"} 7' in before
    deleted = store.apply_retention(NOW).total
    assert deleted == 3  # its minute, hour and day rows
    after = render_exposition(store.connect())
    assert 'assistant_pipeline_runs_total{status="success"} 7' in after
    store.close()
    assert read(path, NOW - 50 * DAY, NOW, NOW).series == []
    clock.now = NOW
    flush(path, clock, lambda inst: inst.metrics.pipeline_runs.labels("success").inc())
    store = MetricsStore(path)
    assert 'assistant_pipeline_runs_total{status="success"} 8' in render_exposition(store.connect())
    store.close()


def test_failed_flush_keeps_the_deltas_and_never_raises(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    inst = Instrumentation(MetricsRegistry())
    store = MetricsStore(blocked / "monitoring.db")
    runtime = MetricsRuntime(inst, store)
    inst.metrics.pipeline_runs.labels("success").inc(3)
    assert runtime.flush() is False
    assert runtime.failures == 1
    inst.metrics.pipeline_runs.labels("success").inc()
    runtime.store = MetricsStore(tmp_path / "monitoring.db")  # the disk is back
    assert runtime.flush() is True
    window = read(tmp_path / "monitoring.db", NOW - DAY, 4e9, 4e9)
    assert window.total("assistant_pipeline_runs_total") == 4
    assert window.total("assistant_metrics_errors_total", operation="flush") == 1


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    store = MetricsStore(path)
    assert store.applied_migrations() == [
        "m001_initial",
        "m002_breakers",
        "m003_pipeline_runs",
        "m004_alerts",
        "m005_run_usage",
        "m006_usage_buckets",
        "m007_run_trace",
    ]
    store.close()
    again = MetricsStore(path)
    assert again.applied_migrations() == [
        "m001_initial",
        "m002_breakers",
        "m003_pipeline_runs",
        "m004_alerts",
        "m005_run_usage",
        "m006_usage_buckets",
        "m007_run_trace",
    ]
    again.close()


def test_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    MetricsStore(path).connect().close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('m099_from_the_future', 0)")
    with pytest.raises(StoreError, match="written by a newer version of assistant"):
        MetricsStore(path).connect()


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"is damaged .* move it aside"):
        MetricsStore(path).connect()
