"""``monitoring.db``: metric aggregates that every process merges its deltas into.

Layout (see the migrations below):

* ``families``: name, kind, help, label names and buckets of each metric, so any
  process can report on metrics it never declared;
* ``series``: one row per (family, label values);
* ``samples``: aggregates per series at three resolutions: minute (kept 48 hours),
  hour and day (kept ``MONITOR_RETENTION_DAYS``). A flush adds its delta to the
  minute, hour and day row at once, which is the roll-up: once old minutes are
  deleted, the hour and day rows already hold them. A query over any window reads
  whole days, then whole hours, then minutes at the edges (about 200 rows per series
  for 30 days);
* ``totals``: all-time counter values and histogram counts per series, never
  deleted, so exported counters stay monotonic whatever retention removes.

Merging is done by SQLite inside one ``BEGIN IMMEDIATE`` transaction per flush:
counters add, gauges keep the newest value, histograms add counts and merge their
sketch and bucket arrays with a Python function registered on the connection. Many
processes flushing at once simply queue on the write lock, each waiting at most
``DATABASE_BUSY_TIMEOUT`` in all (``sqlitefile.connect``: short slices, so SIGTERM
and Ctrl-C act while waiting); a lock held longer is one "locked" StoreError.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant_monitoring.errors import MonitoringError
from assistant_monitoring.metrics import pending
from assistant_monitoring.metrics.registry import AnyFamily, SeriesDelta
from assistant_monitoring.metrics.retention import Pass, Retention, prune
from assistant_monitoring.metrics.sketch import encode_counts, encode_dense, merge_dense
from assistant_monitoring.rollup import REBUILD as USAGE_REBUILD
from assistant_monitoring.sqlitefile import (
    Diagnosis,
    Subject,
    busy_timeout_ms,
    connect,
    diagnose,
    is_lock_error,
    open_read_only,
    prepare_to_open,
)

MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS = (MINUTE, HOUR, DAY)
MINUTE_RETENTION_SECONDS = 48 * HOUR
_RETENTION_EVERY_SECONDS = 600
_RETENTION_BACKLOG_SECONDS = 60


class StoreError(MonitoringError):
    """monitoring.db cannot be used: corrupt, newer schema, unwritable, locked."""

    exit_code = 1

    def __init__(self, message: str, *, kind: str = "unknown") -> None:
        super().__init__(message)
        self.kind = kind  # a sqlitefile Diagnosis kind: "locked", "corrupt", ...


Migration = tuple[str, str]

MIGRATIONS: tuple[Migration, ...] = (
    (
        "m001_initial",
        """
        CREATE TABLE families (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            help TEXT NOT NULL,
            unit TEXT NOT NULL DEFAULT '',
            labelnames TEXT NOT NULL,
            buckets TEXT
        );
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            family TEXT NOT NULL,
            labels TEXT NOT NULL,
            UNIQUE (family, labels)
        );
        CREATE TABLE samples (
            series_id INTEGER NOT NULL,
            resolution INTEGER NOT NULL,
            start INTEGER NOT NULL,
            value REAL NOT NULL DEFAULT 0,
            updated REAL NOT NULL DEFAULT 0,
            count INTEGER NOT NULL DEFAULT 0,
            sum REAL NOT NULL DEFAULT 0,
            min REAL,
            max REAL,
            zero INTEGER NOT NULL DEFAULT 0,
            sketch BLOB,
            buckets BLOB,
            PRIMARY KEY (series_id, resolution, start)
        ) WITHOUT ROWID;
        CREATE INDEX samples_by_time ON samples (resolution, start);
        CREATE TABLE totals (
            series_id INTEGER PRIMARY KEY,
            value REAL NOT NULL DEFAULT 0,
            updated REAL NOT NULL DEFAULT 0,
            count INTEGER NOT NULL DEFAULT 0,
            sum REAL NOT NULL DEFAULT 0,
            buckets BLOB,
            created REAL NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    ),
    (
        "m002_breakers",
        """
        CREATE TABLE breakers (
            service TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            trips INTEGER NOT NULL DEFAULT 0,
            successes INTEGER NOT NULL DEFAULT 0,
            opened_at REAL,
            retry_at REAL,
            reason TEXT,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        "m003_pipeline_runs",
        """
        CREATE TABLE pipeline_runs (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            conversation_id TEXT,
            message_id TEXT,
            status TEXT NOT NULL,
            duration_ms REAL NOT NULL,
            stages TEXT NOT NULL,
            classifiers TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            retries INTEGER NOT NULL DEFAULT 0,
            ttft_ms REAL,
            failed_stage TEXT,
            error_type TEXT,
            error_message TEXT,
            prompt TEXT,
            response TEXT
        );
        CREATE INDEX pipeline_runs_by_time ON pipeline_runs (started_at);
        CREATE INDEX pipeline_runs_by_status ON pipeline_runs (status, started_at);
        CREATE INDEX pipeline_runs_by_conversation ON pipeline_runs (conversation_id, started_at);
        """,
    ),
    (
        "m004_alerts",
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at REAL NOT NULL,
            resolved_at REAL,
            value REAL,
            message TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX alerts_by_rule ON alerts (rule, state);
        CREATE INDEX alerts_by_time ON alerts (started_at);
        """,
    ),
    (
        # Usage accounting (issue 13): the second cache-write tier, reasoning tokens,
        # the price table a run was priced with, and where it was started from.
        "m005_run_usage",
        """
        ALTER TABLE pipeline_runs ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE pipeline_runs ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE pipeline_runs ADD COLUMN price_version TEXT;
        ALTER TABLE pipeline_runs ADD COLUMN session_id TEXT;
        ALTER TABLE pipeline_runs ADD COLUMN repo TEXT;
        ALTER TABLE pipeline_runs ADD COLUMN branch TEXT
        """,
    ),
    (
        # The usage rollup (assistant_monitoring/rollup.py), backfilled from
        # the runs already recorded.
        "m006_usage_buckets",
        """
        CREATE TABLE usage_buckets (
            bucket INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            repo TEXT NOT NULL,
            runs INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            interrupted INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            cache_write_1h_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            priced_runs INTEGER NOT NULL,
            unpriced_runs INTEGER NOT NULL,
            token_runs INTEGER NOT NULL,
            first REAL NOT NULL,
            last REAL NOT NULL,
            PRIMARY KEY (bucket, provider, model, repo)
        ) WITHOUT ROWID;
        """
        + USAGE_REBUILD,
    ),
    (
        # Trace correlation (issue 14): the run's root span, to find it in a tracing
        # backend and in the log lines written inside it.
        "m007_run_trace",
        """
        ALTER TABLE pipeline_runs ADD COLUMN trace_id TEXT;
        ALTER TABLE pipeline_runs ADD COLUMN span_id TEXT;
        CREATE INDEX pipeline_runs_by_trace ON pipeline_runs (trace_id)
        """,
    ),
)
KNOWN_MIGRATIONS = {name for name, _ in MIGRATIONS}

_SAMPLE_COLUMNS = (
    "series_id, resolution, start, value, updated, count, sum, min, max, zero, sketch, buckets"
)
_UPSERT_SAMPLE = {
    "counter": f"""INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (series_id, resolution, start) DO UPDATE SET value = value + excluded.value""",
    "gauge": f"""INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (series_id, resolution, start) DO UPDATE SET
            value = CASE WHEN excluded.updated >= updated THEN excluded.value ELSE value END,
            updated = MAX(updated, excluded.updated)""",
    "histogram": f"""INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (series_id, resolution, start) DO UPDATE SET
            count = count + excluded.count,
            sum = sum + excluded.sum,
            min = MIN(min, excluded.min),
            max = MAX(max, excluded.max),
            zero = zero + excluded.zero,
            sketch = merge_dense(sketch, excluded.sketch),
            buckets = merge_dense(buckets, excluded.buckets)""",
}
_TOTAL_COLUMNS = "series_id, value, updated, count, sum, buckets, created"
_UPSERT_TOTAL = {
    "counter": f"""INSERT INTO totals ({_TOTAL_COLUMNS}) VALUES (?,?,?,?,?,?,?)
        ON CONFLICT (series_id) DO UPDATE SET value = value + excluded.value""",
    "gauge": f"""INSERT INTO totals ({_TOTAL_COLUMNS}) VALUES (?,?,?,?,?,?,?)
        ON CONFLICT (series_id) DO UPDATE SET
            value = CASE WHEN excluded.updated >= updated THEN excluded.value ELSE value END,
            updated = MAX(updated, excluded.updated)""",
    "histogram": f"""INSERT INTO totals ({_TOTAL_COLUMNS}) VALUES (?,?,?,?,?,?,?)
        ON CONFLICT (series_id) DO UPDATE SET
            count = count + excluded.count,
            sum = sum + excluded.sum,
            buckets = merge_dense(buckets, excluded.buckets)""",
}


def labels_key(labels: Iterable[tuple[str, str]]) -> str:
    """Canonical JSON of label pairs (declared order), the series' identity."""
    return json.dumps(list(labels), separators=(",", ":"))


class MetricsStore:
    """One process's connection to ``monitoring.db``."""

    def __init__(
        self,
        path: Path,
        *,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
        read_only_ok: bool = False,
        busy_timeout_ms: float | None = None,
    ) -> None:
        self.path = path
        # None: the process's DATABASE_BUSY_TIMEOUT (sqlitefile.use_busy_timeout).
        self._busy_timeout_ms = busy_timeout_ms
        self.retention = retention or Retention()
        # Seconds a retention pass may take in this process (monitor serve allows more:
        # a CLI command should not linger at exit working through a backlog).
        self.retention_budget_seconds = 0.25
        self.clock = clock
        # Readers (reports, the dashboards, /api/*) still work on a store they may
        # not write: a full or read-only disk must not hide the data already there.
        self.read_only_ok = read_only_ok
        self.read_only = False  # True once connected read-only
        self._series_ids: dict[tuple[str, str], int] = {}
        self._families_written: set[str] = set()
        self._conn: sqlite3.Connection | None = None

    # -- connection and schema ---------------------------------------------------

    @property
    def subject(self) -> Subject:
        """This file, as the diagnosis messages name it."""
        return Subject(self.path, "the metrics store", "MONITORING_DB_PATH")

    @property
    def busy_timeout_ms(self) -> float:
        """How long any statement waits for another process's lock, in all."""
        return busy_timeout_ms() if self._busy_timeout_ms is None else self._busy_timeout_ms

    def connect(self) -> sqlite3.Connection:
        """Open (and migrate) the database; StoreError with a clear message on failure.

        A damaged file is refused before SQLite could write to it; with
        ``read_only_ok``, a valid store that cannot be written is opened read-only.
        """
        if self._conn is not None:
            return self._conn
        problem = prepare_to_open(self.subject, busy_timeout_ms=self.busy_timeout_ms)
        if problem is not None:
            return self._read_only_or_raise(problem)
        try:
            # check_same_thread=False: the periodic flush thread and the exit hook
            # share the connection; MetricsRuntime serialises their use.
            conn = connect(
                self.path,
                busy_timeout_ms=self._busy_timeout_ms,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            return self._read_only_or_raise(exc)
        try:
            # Read only, first: a store from a newer version is refused before
            # anything (the journal mode included) is changed in it.
            self._refuse_newer(self._applied(conn))
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.create_function("merge_dense", 2, merge_dense, deterministic=True)
            self._migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error | OSError):
                return self._read_only_or_raise(exc)
            raise
        self._conn = conn
        return conn

    def _read_only_or_raise(self, error: BaseException | Diagnosis) -> sqlite3.Connection:
        """A read-only connection, when allowed and the file is only unwritable; else
        the StoreError that says what is wrong."""
        found = (
            error
            if isinstance(error, Diagnosis)
            else diagnose(self.subject, error, busy_timeout_ms=self.busy_timeout_ms)
        )
        if found.kind not in ("read_only", "disk_full") or not self.read_only_ok:
            raise StoreError(found.message, kind=found.kind) from None
        try:
            conn = open_read_only(self.path, timeout=self.busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            if found.kind == "read_only" and is_lock_error(exc):
                found = diagnose(self.subject, exc, busy_timeout_ms=self.busy_timeout_ms)
            raise StoreError(found.message, kind=found.kind) from None
        applied = self._applied(conn)
        newer, missing = applied - KNOWN_MIGRATIONS, KNOWN_MIGRATIONS - applied
        if newer or missing:
            conn.close()
            raise StoreError(
                f"{found.message}; and its schema needs "
                + ("a newer assistant" if newer else "an upgrade, which needs write access")
            )
        self.read_only = True
        self._conn = conn
        return conn

    @staticmethod
    def _applied(conn: sqlite3.Connection) -> set[str]:
        try:
            return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        except sqlite3.OperationalError:  # no such table: never migrated
            return set()

    def _refuse_newer(self, applied: set[str]) -> None:
        newer = applied - KNOWN_MIGRATIONS
        if newer:
            raise StoreError(
                f"the metrics store {self.path} was written by a newer version of assistant "
                f"(migrations {sorted(newer)}): upgrade assistant, or point "
                "MONITORING_DB_PATH at another file",
                kind="newer",
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        applied = self._applied(conn)
        self._refuse_newer(applied)
        for name, script in MIGRATIONS:
            if name in applied:
                continue
            with self._write(conn):
                # Re-check inside the write lock: another process may have just run it.
                if conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = ?", (name,)
                ).fetchone():
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, self.clock()),
                )

    def applied_migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        conn = self.connect()
        return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE) on the store, retried while locked."""
        conn = self.connect()
        with self._write(conn):
            yield conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        # The connection waits for the lock (sqlitefile.PatientConnection); a lock
        # still held after DATABASE_BUSY_TIMEOUT is a StoreError naming this file.
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                raise StoreError(self._locked(exc), kind="locked") from None
            raise
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_lock_error(exc):
                raise StoreError(self._locked(exc), kind="locked") from None
            raise

    def _locked(self, error: sqlite3.OperationalError) -> str:
        return diagnose(self.subject, error, busy_timeout_ms=self.busy_timeout_ms).message

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writing -------------------------------------------------------------

    def write(self, families: Iterable[AnyFamily], deltas: list[SeriesDelta]) -> None:
        """Merge one flush's deltas into the store (one transaction)."""
        if not deltas:
            return
        conn = self.connect()
        by_name = {family.name: family for family in families}
        now = self.clock()
        try:
            with self._write(conn):
                self._merge_deltas(conn, by_name, deltas, now, self._families_written)
        except BaseException:
            self._forget_ids()
            raise
        self._families_written.update(delta.family for delta in deltas)
        self._merge_pending(conn)
        self._maybe_apply_retention(conn, now)

    def _forget_ids(self) -> None:
        # The transaction rolled back: series rows created in it are gone, and SQLite
        # may hand their ids to other series. Forget every cached id.
        self._series_ids.clear()
        self._families_written.clear()

    @property
    def pending_dir(self) -> Path:
        """Where what could not be written while the store was locked waits (runs, deltas)."""
        return self.path.with_name(self.path.name + ".pending")

    def spool(self, families: Iterable[AnyFamily], deltas: list[SeriesDelta]) -> Path:
        """Keep deltas this process cannot write for the next flush (metrics/pending.py)."""
        return pending.spool(self.pending_dir, families, deltas, self.clock())

    def _merge_pending(self, conn: sqlite3.Connection) -> None:
        """Add spooled deltas in, each file exactly once (its name goes into ``meta`` in
        the same transaction), at the minute they were recorded. A file that is not
        one we wrote whole is left where it is, for a person."""
        merged: list[Path] = []
        for path in pending.pending(self.pending_dir):
            spooled = pending.load(path)
            if spooled is None:
                continue
            key = f"pending:{spooled.name}"
            try:
                with self._write(conn):
                    done = conn.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone()
                    if done is None:
                        self._merge_deltas(
                            conn, spooled.families, spooled.deltas, spooled.recorded_at, set()
                        )
                        conn.execute(
                            "INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(self.clock()))
                        )
            except StoreError:
                self._forget_ids()
                break  # locked again: the next flush goes on
            except BaseException:
                self._forget_ids()
                raise
            path.unlink(missing_ok=True)
            merged.append(path)
        if merged:
            # Their files are gone: the keys that guarded them can go too. (A kill
            # between the two leaves a key behind: one small row, never a double count.)
            with self._write(conn):
                conn.executemany(
                    "DELETE FROM meta WHERE key = ?", [(f"pending:{p.name}",) for p in merged]
                )

    def _merge_deltas(
        self,
        conn: sqlite3.Connection,
        by_name: Mapping[str, Any],
        deltas: list[SeriesDelta],
        now: float,
        families_written: set[str],
    ) -> None:
        """Add ``deltas`` as recorded at ``now`` (inside the caller's transaction)."""
        for name in {delta.family for delta in deltas} - families_written:
            self._write_family(conn, by_name[name])
        for delta in deltas:
            family = by_name[delta.family]
            series_id = self._series_id(conn, delta.family, labels_key(delta.labels))
            kind = family.kind
            row = self._row(kind, delta, family, now)
            conn.executemany(
                _UPSERT_SAMPLE[kind],
                [(series_id, res, int(now // res * res), *row) for res in RESOLUTIONS],
            )
            conn.execute(
                _UPSERT_TOTAL[kind],
                (series_id, row[0], row[1], row[2], row[3], row[8], now),
            )

    @staticmethod
    def _row(kind: str, delta: SeriesDelta, family: Any, now: float) -> tuple[Any, ...]:
        # value, updated, count, sum, min, max, zero, sketch, buckets
        if kind == "counter":
            return (delta.value, now, 0, 0.0, None, None, 0, None, None)
        if kind == "gauge":
            return (delta.value, delta.updated, 0, 0.0, None, None, 0, None, None)
        return (
            0.0,
            now,
            delta.count,
            delta.sum,
            delta.min if math.isfinite(delta.min) else None,
            delta.max if math.isfinite(delta.max) else None,
            delta.zero,
            encode_dense(delta.bins),
            encode_counts(delta.buckets),
        )

    def _write_family(self, conn: sqlite3.Connection, family: Any) -> None:
        buckets = getattr(family, "buckets", None)
        conn.execute(
            """INSERT INTO families (name, kind, help, unit, labelnames, buckets)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET
                 kind = excluded.kind, help = excluded.help, unit = excluded.unit,
                 labelnames = excluded.labelnames, buckets = excluded.buckets""",
            (
                family.name,
                family.kind,
                family.help,
                family.unit,
                json.dumps(list(family.labelnames)),
                json.dumps(list(buckets)) if buckets is not None else None,
            ),
        )

    def _series_id(self, conn: sqlite3.Connection, family: str, labels: str) -> int:
        key = (family, labels)
        cached = self._series_ids.get(key)
        if cached is not None:
            return cached
        conn.execute("INSERT OR IGNORE INTO series (family, labels) VALUES (?, ?)", key)
        (series_id,) = conn.execute(
            "SELECT id FROM series WHERE family = ? AND labels = ?", key
        ).fetchone()
        self._series_ids[key] = int(series_id)
        return int(series_id)

    # -- retention -------------------------------------------------------------

    def _maybe_apply_retention(self, conn: sqlite3.Connection, now: float) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'retention_at'").fetchone()
        last = _seconds(row[0]) if row is not None else None
        # A time past now (a clock that was set wrong once, a hand edit) or one that
        # is no time at all is due at once: trusted, it would stop retention silently.
        if last is not None and last <= now and now - last < _RETENTION_EVERY_SECONDS:
            return
        self.apply_retention(now)

    def apply_retention(self, now: float | None = None, *, budget: float | None = None) -> Pass:
        """One retention pass (see ``metrics/retention.py``): batches within a budget.

        Totals are kept, so exported counters never go down. When the pass stops at
        its budget with rows left, the next one is due in a minute, not ten.
        """
        conn = self.connect()
        current = self.clock() if now is None else now
        report = prune(
            conn,
            self._write,
            self.retention,
            now=current,
            budget=self.retention_budget_seconds if budget is None else budget,
        )
        due_in = _RETENTION_EVERY_SECONDS if report.done else _RETENTION_BACKLOG_SECONDS
        with self._write(conn):
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('retention_at', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(current - _RETENTION_EVERY_SECONDS + due_in),),
            )
        return report


def _seconds(text: object) -> float | None:
    """A stored epoch time, or None when it is not a finite number."""
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
