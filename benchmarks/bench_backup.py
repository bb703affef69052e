"""``assistant db backup`` of a 1 GiB ``monitoring.db`` against ``sqlite3 .backup`` and ``cp``.

Setup: a ``monitoring.db`` made by ``MetricsStore`` (WAL, incremental auto_vacuum)
filled with pipeline runs carrying 2 KB of error text each until it reaches
``--size-mib`` (1024), then checkpointed; a small migrated ``assistant.db`` beside it.
The page cache is warm for every contender (each reads the whole file once before
the timed runs), so the figures compare the work, not the disk.

Measured, in the same run, the median of ``--repeats`` (3):

1. ours, in-process: ``make_backup`` (online backup in one step, then the copy's
   sha256 and row counts for the manifest, as the command does);
2. ours, the installed CLI: ``assistant db backup DEST --json`` (adds start-up);
3. the reference: ``sqlite3 SRC ".backup DST"`` (the sqlite3 CLI, skipped if absent);
4. ``cp`` of the quiesced file (no consistency at all while writers run: the floor).

Target (issue 12): ours <= 1.5x ``sqlite3 .backup``.

Run: ``.venv/bin/python benchmarks/bench_backup.py [--size-mib N] [--repeats R] [--json]``
(about a minute and a half; 2-3 GiB of temporary space).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    dump_json,
    isolated_env,
    machine_info,
    print_machine,
    print_table,
    verdict,
)

from assistant_monitoring.backup import make_backup
from assistant_monitoring.dbcheck import Managed
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.sqlitefile import Subject

TARGET_RATIO = 1.5


def build(data: Path, size_mib: int) -> float:
    started = time.perf_counter()
    store_path = data / "monitoring.db"
    MetricsStore(store_path).connect().close()
    payload = "x" * 2000
    conn = sqlite3.connect(store_path)
    number = 0
    # The WAL holds pages twice: aim past the target so the checkpointed file reaches it.
    while store_path.stat().st_size + _wal(store_path) < size_mib * 2**20 * 1.08:
        with conn:
            conn.executemany(
                "INSERT INTO pipeline_runs (id, started_at, finished_at, status, duration_ms, "
                "stages, classifiers, error_message) VALUES (?, ?, ?, 'failure', 1, '[]', '{}', ?)",
                ((f"run_{number + n}", time.time(), time.time(), payload) for n in range(20_000)),
            )
        number += 20_000
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assistant = sqlite3.connect(data / "assistant.db")
    assistant.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    assistant.close()
    return time.perf_counter() - started


def _wal(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def timed(action: Any, repeats: int, clean: Any) -> list[float]:
    times = []
    for _ in range(repeats):
        clean()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    clean()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    info = machine_info()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        built = build(data, args.size_mib)
        source = data / "monitoring.db"
        size = source.stat().st_size
        warm(source)
        out = root / "out"

        def clean() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        databases = [
            Managed("conversations", Subject(data / "assistant.db", "c", "X"), "", "assistant.db"),
            Managed("metrics", Subject(source, "m", "Y"), "", "monitoring.db"),
        ]
        stamp = iter(range(10_000))
        results["ours, in-process (make_backup)"] = timed(
            lambda: make_backup(databases, out, busy_timeout_ms=5000, now=1e9 + next(stamp)),
            args.repeats,
            clean,
        )
        env = isolated_env(data)

        def cli() -> None:
            subprocess.run(
                [str(ASSISTANT), "db", "backup", str(out), "--json"],
                env=env,
                check=True,
                capture_output=True,
            )
            time.sleep(1.01)  # a backup's name has seconds: the next one needs a new one

        cli_times = timed(cli, args.repeats, clean)
        results["ours, the CLI (assistant db backup)"] = [t - 1.01 for t in cli_times]
        sqlite_cli = shutil.which("sqlite3")
        if sqlite_cli:
            results["sqlite3 .backup (reference)"] = timed(
                lambda: subprocess.run(
                    [sqlite_cli, str(source), f".backup {out / 'copy.db'}"], check=True
                ),
                args.repeats,
                clean,
            )
        results["cp of the quiesced file"] = timed(
            lambda: shutil.copyfile(source, out / "copy.db"), args.repeats, clean
        )
    medians = {name: statistics.median(times) for name, times in results.items()}
    reference = medians.get("sqlite3 .backup (reference)")
    ours = medians["ours, in-process (make_backup)"]
    ratio = ours / reference if reference else None
    document = {
        "machine": info,
        "size_bytes": size,
        "build_seconds": built,
        "medians_seconds": medians,
        "runs_seconds": results,
        "ratio_ours_vs_sqlite3_backup": ratio,
        "cli_ratio_vs_sqlite3_backup": (
            medians["ours, the CLI (assistant db backup)"] / reference if reference else None
        ),
        "target": TARGET_RATIO,
        "met": ratio is not None and ratio <= TARGET_RATIO,
    }
    if args.json:
        dump_json(document)
        return
    print_machine(info)
    print(f"monitoring.db: {size / 2**20:,.0f} MiB (built in {built:.0f} s), page cache warm")
    rows = [
        [
            name,
            f"{medians[name]:.2f}",
            " ".join(f"{t:.2f}" for t in times),
            f"{medians[name] / reference:.2f}x" if reference else "-",
            f"{size / 2**20 / medians[name]:,.0f}",
        ]
        for name, times in results.items()
    ]
    print_table(["how", "median s", "runs s", "x sqlite3 .backup", "MiB/s"], rows)
    if ratio is None:
        print("sqlite3 CLI not found: no reference, no verdict")
    else:
        met = verdict(ratio <= TARGET_RATIO)
        print(f"target ours <= {TARGET_RATIO}x sqlite3 .backup: {ratio:.2f}x {met}")


if __name__ == "__main__":
    sys.exit(main())
