"""Retention for everything ``monitoring.db`` grows: samples, pipeline runs, alerts.

What is kept (settings, README "Retention"):

* minute samples 48 hours; hour and day samples ``MONITOR_RETENTION_DAYS`` (30), the
  health history among them (it is the ``assistant_health_status`` family); the
  all-time totals forever, so exported counters never go down;
* pipeline runs ``MONITOR_RUNS_RETENTION_DAYS`` (30) and at most
  ``MONITOR_RUNS_MAX_ROWS`` (1,000,000), whichever bites first;
* resolved alerts ``MONITOR_RETENTION_DAYS``; a firing alert is never deleted;
* the usage rollup (``usage_buckets``, small) 400 days, so that monthly usage reports
  cover a year after the runs themselves are gone.

Deletion goes in batches, each its own short write transaction, so a writer (an
``ask`` flushing its metrics, a run being recorded) waits at most one batch, never
one huge DELETE. The batch size adapts so that a batch holds the write lock about
``_TARGET_HOLD_SECONDS``; a pass stops at its time budget and says whether it is
done, so the caller can come back sooner when there is a backlog (after an upgrade,
or a lowered limit). Freed pages go back to the file system with ``PRAGMA
incremental_vacuum`` on stores created with ``auto_vacuum = INCREMENTAL`` (every
store this version creates; ``assistant db vacuum`` converts an older one).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from assistant_monitoring.killpoints import reached
from assistant_monitoring.rollup import KEEP_DAYS as USAGE_KEEP_DAYS

DAY = 86400.0
MINUTE_RETENTION_SECONDS = 48 * 3600.0
_MINUTE, _HOUR, _DAY = 60, 3600, 86400  # the samples' resolutions, as the store writes them

_TARGET_HOLD_SECONDS = 0.05
_MIN_PAUSE_SECONDS = 0.01
_FIRST_BATCH = 2000
_MIN_BATCH, _MAX_BATCH = 100, 50_000
_FIRST_VACUUM_PAGES, _MIN_VACUUM_PAGES, _MAX_VACUUM_PAGES = 64, 8, 4096  # pages a chunk

Write = Callable[[sqlite3.Connection], AbstractContextManager[None]]


@dataclass(frozen=True)
class Retention:
    """How long each kind of row is kept."""

    days: int = 30  # MONITOR_RETENTION_DAYS: hour/day samples, resolved alerts
    runs_days: int = 30  # MONITOR_RUNS_RETENTION_DAYS
    runs_max_rows: int = 1_000_000  # MONITOR_RUNS_MAX_ROWS

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        monitoring = settings.monitoring
        return cls(
            days=monitoring.retention_days,
            runs_days=monitoring.runs_retention_days,
            runs_max_rows=monitoring.runs_max_rows,
        )


@dataclass
class Pass:
    """What one retention pass did."""

    deleted: dict[str, int] = field(default_factory=dict)
    done: bool = True  # False: stopped at its budget with rows still to delete
    batches: int = 0
    longest_hold_seconds: float = 0.0
    pages_freed: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class _Batches:
    """Delete in batches within a time budget, keeping each write lock short."""

    def __init__(self, conn: sqlite3.Connection, write: Write, budget: float, report: Pass):
        self.conn = conn
        self.write = write
        self.deadline = time.monotonic() + budget
        self.size = _FIRST_BATCH
        self.report = report

    def delete(self, label: str, table: str, key: str, where: str, params: tuple[Any, ...]) -> bool:
        """Delete ``table`` rows matching ``where``; False when the budget ran out first."""
        while time.monotonic() < self.deadline:
            started = time.perf_counter()
            with self.write(self.conn):
                deleted = self.conn.execute(
                    f"DELETE FROM {table} WHERE {key} IN "
                    f"(SELECT {key.strip('()')} FROM {table} WHERE {where} LIMIT ?)",
                    (*params, self.size),
                ).rowcount
                reached("retention.deleting")  # a kill here: the batch rolls back
            reached("retention.deleted")
            held = time.perf_counter() - started
            self._record(label, deleted, held)
            if deleted < self.size:
                return True
            self.size = _resized(self.size, held, _MIN_BATCH, _MAX_BATCH)
            # Leave the lock free as long as it was held: a writer waiting in SQLite's
            # busy handler (which sleeps between tries) gets in, instead of finding
            # the next batch already under way every time it looks.
            time.sleep(max(held, _MIN_PAUSE_SECONDS))
        return False

    def give_back_pages(self) -> None:
        """Return free pages to the file system, a chunk at a time, within the budget
        (only on stores with ``auto_vacuum = INCREMENTAL``; a no-op on others)."""
        conn = self.conn
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: INCREMENTAL
            return
        pages = _FIRST_VACUUM_PAGES
        while time.monotonic() < self.deadline:
            before = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if not before:
                return
            started = time.perf_counter()
            # executescript steps the pragma to its end; execute() would free one page.
            conn.executescript(f"PRAGMA incremental_vacuum({pages});")
            reached("retention.vacuumed")
            held = time.perf_counter() - started
            freed = before - conn.execute("PRAGMA freelist_count").fetchone()[0]
            self.report.pages_freed += freed
            self.report.longest_hold_seconds = max(self.report.longest_hold_seconds, held)
            if freed <= 0:
                return
            # Moving pages costs more the further they are: sized like the batches.
            pages = _resized(pages, held, _MIN_VACUUM_PAGES, _MAX_VACUUM_PAGES)
            time.sleep(max(held, _MIN_PAUSE_SECONDS))

    def _record(self, label: str, deleted: int, held: float) -> None:
        report = self.report
        report.batches += 1
        report.longest_hold_seconds = max(report.longest_hold_seconds, held)
        if deleted:
            report.deleted[label] = report.deleted.get(label, 0) + deleted


def _resized(size: int, held: float, low: int, high: int) -> int:
    """The next chunk's size: halved past twice the target hold, doubled under half."""
    if held > 2 * _TARGET_HOLD_SECONDS:
        return max(low, size // 2)
    if held < _TARGET_HOLD_SECONDS / 2:
        return min(high, size * 2)
    return size


def _steps(conn: sqlite3.Connection, policy: Retention, now: float) -> Iterator[tuple[Any, ...]]:
    """(label, table, key, where, params) for each deletion, oldest data first."""
    yield (
        "minute samples",
        "samples",
        "(series_id, resolution, start)",
        "resolution = ? AND start < ?",
        (_MINUTE, now - MINUTE_RETENTION_SECONDS),
    )
    yield (
        "hour and day samples",
        "samples",
        "(series_id, resolution, start)",
        "resolution IN (?, ?) AND start < ?",
        (_HOUR, _DAY, now - policy.days * DAY),
    )
    yield (
        "pipeline runs",
        "pipeline_runs",
        "rowid",
        "started_at < ?",
        (now - policy.runs_days * DAY,),
    )
    # Past the row limit: the newest `runs_max_rows` runs stay. (Runs that started in
    # the same instant as the oldest one kept stay too: a few rows over, never under.)
    row = conn.execute(
        "SELECT started_at FROM pipeline_runs ORDER BY started_at DESC LIMIT 1 OFFSET ?",
        (policy.runs_max_rows - 1,),
    ).fetchone()
    if row is not None:
        yield ("pipeline runs", "pipeline_runs", "rowid", "started_at < ?", (row[0],))
    yield (
        "usage buckets",
        "usage_buckets",
        "(bucket, provider, model, repo)",
        "bucket < ?",
        (now - USAGE_KEEP_DAYS * DAY,),
    )
    yield (
        "resolved alerts",
        "alerts",
        "rowid",
        "state = 'resolved' AND resolved_at < ?",
        (now - policy.days * DAY,),
    )


def prune(
    conn: sqlite3.Connection, write: Write, policy: Retention, *, now: float, budget: float
) -> Pass:
    """One retention pass over the store, within ``budget`` seconds (roughly: a batch
    that has begun finishes)."""
    report = Pass()
    batches = _Batches(conn, write, budget, report)
    for label, table, key, where, params in _steps(conn, policy, now):
        if not batches.delete(label, table, key, where, params):
            report.done = False
            break
    if report.total or conn.execute("PRAGMA freelist_count").fetchone()[0]:
        batches.give_back_pages()
    return report
