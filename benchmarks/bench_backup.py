"""``assistant db backup`` of a 1 GiB ``monitoring.db`` against ``sqlite3 .backup`` and ``cp``.

Setup: a ``monitoring.db`` made by ``MetricsStore`` (WAL, incremental auto_vacuum)
filled with pipeline runs carrying 2 KB of error text each until it reaches
``--size-mib`` (1024), then checkpointed; a small migrated ``assistant.db`` beside it.
The page cache is warm for every contender (the file is read once before the
benchmarks, and pyperf's warm-up value in each worker reads it again), so the
figures compare the work, not the disk.

Measured with pyperf's ``Runner.bench_time_func`` in worker processes (by default 3
workers x (1 warm-up + 2 values) per contender, one contender after the other); the
destination folder is emptied before each backup, untimed:

1. ours, in-process: ``make_backup`` (online backup in one step, ``quick_check``,
   ``fsync``, the copy's sha256 and row counts, the manifest read back, as the
   command does);
2. ours, the installed CLI: ``assistant db backup DEST --json`` (adds start-up;
   bytecode cached, ``PYTHONDONTWRITEBYTECODE`` unset; see ``_perf.py``);
3. the reference: ``sqlite3 SRC ".backup DST"`` (the sqlite3 CLI, skipped if absent);
4. ``cp`` of the quiesced file (``shutil.copyfile``; no consistency at all while
   writers run: the floor).

Target (issue 12): ours <= 1.5x ``sqlite3 .backup`` (medians).

Run: ``.venv/bin/python benchmarks/bench_backup.py [--size-mib N] [pyperf options:
--fast, -p N, -n N, -o FILE ...]`` (about two minutes; 2-3 GiB of temporary space in
the home directory).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import ASSISTANT
from _perf import CommandBench, Target, command_env, machine, median, summary, verdict

from assistant_monitoring.backup import make_backup
from assistant_monitoring.inventory import Managed
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.sqlitefile import Subject

TARGET_RATIO = 1.5
OURS = "ours, in-process (make_backup)"
CLI = "ours, the CLI (assistant db backup)"
REFERENCE = "sqlite3 .backup (reference)"
COPY = "cp of the quiesced file"


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


def timed(action: Callable[[Path, Path], object], root: Path) -> Callable[[int], float]:
    """A ``bench_time_func`` function: ``action(data, out)`` into an emptied ``out``."""
    data, out = root / "data", root / "out"

    def time_func(loops: int) -> float:
        total = 0.0
        for _ in range(loops):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            started = time.perf_counter()
            action(data, out)
            total += time.perf_counter() - started
        shutil.rmtree(out, ignore_errors=True)
        return total

    return time_func


def ours(data: Path, out: Path) -> None:
    databases = [
        Managed("conversations", Subject(data / "assistant.db", "c", "X"), "", "assistant.db"),
        Managed("metrics", Subject(data / "monitoring.db", "m", "Y"), "", "monitoring.db"),
    ]
    make_backup(databases, out, busy_timeout_ms=5000)


def cli(data: Path, out: Path) -> None:
    # The worker's environment is the benchmark's: ASSISTANT_DATA_DIR=data.
    subprocess.run(
        [str(ASSISTANT), "db", "backup", str(out), "--json"], check=True, capture_output=True
    )


def sqlite_backup(data: Path, out: Path) -> None:
    sqlite_cli = shutil.which("sqlite3")
    assert sqlite_cli is not None
    subprocess.run(
        [sqlite_cli, str(data / "monitoring.db"), f".backup {out / 'copy.db'}"], check=True
    )


def copy(data: Path, out: Path) -> None:
    shutil.copyfile(data / "monitoring.db", out / "copy.db")


def run_benchmarks(bench: CommandBench, env: dict[str, str]) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    root = Path(bench.state["root"])
    bench.time_func(OURS, timed(ours, root), env)
    bench.time_func(CLI, timed(cli, root), env)
    if bench.state["sqlite3"]:
        bench.time_func(REFERENCE, timed(sqlite_backup, root), env)
    bench.time_func(COPY, timed(copy, root), env)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=1024, help="size of monitoring.db")


def main() -> None:
    bench = CommandBench(__doc__, processes=3, values=2, add_arguments=add_arguments)
    if bench.is_worker:
        run_benchmarks(bench, {})
        return
    args = bench.args
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        built = build(data, args.size_mib)
        source = data / "monitoring.db"
        size = source.stat().st_size
        warm(source)
        env = command_env(ASSISTANT_DATA_DIR=str(data))
        out = root / "out"
        bench.check([str(ASSISTANT), "db", "backup", str(out), "--json"], env)  # also bytecode
        shutil.rmtree(out)
        bench.share(root=str(root), sqlite3=shutil.which("sqlite3") is not None)
        run_benchmarks(bench, env)

    results = bench.results
    print()
    print(machine(list(results.values())))
    print(f"monitoring.db: {size / 2**20:,.0f} MiB (built in {built:.0f} s), page cache warm")
    if REFERENCE not in results:
        summary(results, OURS)
        print("sqlite3 CLI not found: no reference, no verdict")
        return
    ratio = median(results[OURS]) / median(results[REFERENCE])
    target = Target(f"<= {TARGET_RATIO}x sqlite3 .backup", ratio <= TARGET_RATIO)
    bench.annotate(summary(results, REFERENCE, {OURS: target}))
    for name, result in results.items():
        print(f"  {name}: {size / 2**20 / median(result):,.0f} MiB/s")
    print(f"target ours <= {TARGET_RATIO}x sqlite3 .backup: {ratio:.2f}x {verdict(target.met)}")


if __name__ == "__main__":
    main()
