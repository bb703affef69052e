"""``assistant monitor metrics`` on a month of data: wall time of the command and of the query.

The store: a ``monitoring.db`` holding 30 days of activity on the assistant's 100
series (pipeline runs and durations, 5 stages, 4 classifiers, LLM requests,
durations, time to first token and tokens for 3 models of 2 providers, database
queries per operation, errors, health and breaker gauges, process memory and CPU;
see ``_metrics_workload.py``), ~2 pipeline runs a minute by day, fewer at night.
It is written through the real code (``Histogram.observe`` ... ``MetricsRuntime.flush``
into ``MetricsStore(path, clock=...)`` with an injected clock):

* days 30 to 2 ago: one flush per hour carrying that hour's observations (the store
  keeps minute rows 48 hours only, so older minutes would be deleted anyway; the
  hour and day rows get exactly what minute flushes would have given them);
* the last 48 hours: one flush per minute.

It is built once (about a minute) as a template under ``benchmarks/.data/`` (which is
gitignored), anchored at a UTC midnight. Each run copies it, moves every timestamp
forward by whole days to today's midnight (SQL ``UPDATE``s; day and hour boundaries
stay aligned), then tops it up to the current minute with real minute flushes and
runs the store's retention, so "the last hour" and "the last 30 days" are full.

Measured, in the same run:

* the installed command, ``.venv/bin/assistant monitor metrics --period 1h`` and
  ``--period 30d`` (tables, and ``--json``), as subprocesses with
  ``ASSISTANT_ENV_FILE=none ASSISTANT_DATA_DIR=<the run's data dir>``, against
  ``.venv/bin/python -c pass``: median of 10 runs after a warm-up, commands taking
  turns so drift hits them alike; each command's output is checked once. Two more
  rows put the figures in context: the same command on a data dir with no store
  yet (the command's fixed cost: start-up, settings, imports), and, when the
  environment sets ``PYTHONDONTWRITEBYTECODE``, the command as that environment
  runs it (the project's sources compiled at every run; the main rows keep the
  bytecode in a cache under ``benchmarks/.data/``, as an installed copy would);
* in process: ``metrics_report(settings, period=...)`` for 1h and 30d, median of
  10, and its two halves (``query_window`` and ``build_report``);
* the store's size, and its rows per resolution.

Targets: ``--period 1h`` < 300 ms, ``--period 30d`` < 600 ms (wall, installed command).

Run: ``.venv/bin/python benchmarks/bench_metrics_query.py [--runs N] [--json]
[--rebuild]``. About 1.5 minutes the first time (builds the template), then
20-45 s (the top-up is longer late in the UTC day).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    DATA_DIR,
    PYTHON,
    LoadWatch,
    dump_json,
    isolated_env,
    machine_info,
    median,
    print_machine,
    print_table,
    time_call,
    verdict,
)
from _metrics_workload import SERIES_COUNT, record_activity

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import DAY, HOUR, MINUTE, MetricsStore

GENERATOR_VERSION = 2
SEED = 20261123
DAYS = 30
MINUTE_HOURS = 48
TARGETS_S = {"1h": 0.300, "30d": 0.600}
ROOT = DATA_DIR / "metrics-query"
TEMPLATE_DIR = ROOT / "template"
TEMPLATE = TEMPLATE_DIR / "monitoring.db"
TEMPLATE_META = TEMPLATE_DIR / "meta.json"
RUN_DIR = ROOT / "run"  # ASSISTANT_DATA_DIR of the commands: RUN_DIR/monitoring.db


class Clock:
    """The store's injected clock, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def runs_per_minute(at: float) -> float:
    """Traffic by UTC hour of day: ~0.4 a minute at night, ~3 in the afternoon."""
    hour = (at % DAY) / HOUR
    daylight = max(0.0, math.sin(math.pi * (hour - 6) / 16)) if 6 <= hour <= 22 else 0.0
    return 0.4 + 2.6 * daylight


class Writer:
    """One long-lived 'process' writing activity into a store with an injected clock."""

    def __init__(self, path: Path, clock: Clock, seed: int) -> None:
        self.clock = clock
        self.store = MetricsStore(path, clock=clock)
        self.instrumentation = Instrumentation(MetricsRegistry())
        self.runtime = MetricsRuntime(self.instrumentation, self.store)
        self.rng = random.Random(seed)
        self.flushes = 0
        self.runs = 0

    def period(self, start: float, minutes: int) -> None:
        """Record ``minutes`` of traffic starting at ``start``, then flush it in that span."""
        rate = runs_per_minute(start)
        self.runs += record_activity(
            self.instrumentation.metrics, self.rng, minutes=minutes, runs_per_minute=rate
        )
        self.clock.now = start + minutes * MINUTE - 30  # inside the span's last minute
        if not self.runtime.flush():
            raise RuntimeError("flush failed")
        self.flushes += 1

    def close(self) -> None:
        self.store.close()


def build_template() -> dict[str, Any]:
    """Write 30 days through the real store code; returns what was done."""
    if TEMPLATE_DIR.exists():
        shutil.rmtree(TEMPLATE_DIR)
    TEMPLATE_DIR.mkdir(parents=True)
    anchor = math.floor(time.time() / DAY) * DAY
    first = anchor - DAYS * DAY
    minute_start = anchor - MINUTE_HOURS * HOUR
    started = time.perf_counter()
    writer = Writer(TEMPLATE, Clock(first), SEED)
    hour = first
    while hour < minute_start:
        writer.period(hour, 60)
        hour += HOUR
    hourly = writer.flushes
    minute = minute_start
    while minute < anchor:
        writer.period(minute, 1)
        minute += MINUTE
    writer.store.apply_retention(anchor, budget=3600.0)
    writer.close()
    meta = {
        "generator_version": GENERATOR_VERSION,
        "anchor": anchor,
        "hourly_flushes": hourly,
        "minute_flushes": writer.flushes - hourly,
        "pipeline_runs": writer.runs,
        "build_seconds": round(time.perf_counter() - started, 1),
        "size_bytes": TEMPLATE.stat().st_size,
    }
    TEMPLATE_META.write_text(json.dumps(meta, indent=2))
    return meta


def template_meta(rebuild: bool) -> tuple[dict[str, Any], bool]:
    """The template's description, building it when missing, stale in format, or asked."""
    if not rebuild and TEMPLATE.exists() and TEMPLATE_META.exists():
        meta = json.loads(TEMPLATE_META.read_text())
        if meta.get("generator_version") == GENERATOR_VERSION:
            return meta, False
    return build_template(), True


def shift(path: Path, seconds: int) -> None:
    """Move every timestamp of a store forward by ``seconds`` (a whole number of days)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Two steps through negative values: a one-step shift of a primary key column
        # would collide with rows not yet moved.
        conn.execute("UPDATE samples SET start = -(start + ?)", (seconds,))
        conn.execute("UPDATE samples SET start = -start")
        conn.execute("UPDATE samples SET updated = updated + ? WHERE updated > 0", (seconds,))
        conn.execute(
            "UPDATE totals SET updated = updated + ?, created = created + ? WHERE updated > 0",
            (seconds, seconds),
        )
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'retention_at'").fetchone()
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'retention_at'", (str(float(value) + seconds),)
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def prepare_run(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the template, shift it to today, top it up to the current minute."""
    started = time.perf_counter()
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
    RUN_DIR.mkdir(parents=True)
    path = RUN_DIR / "monitoring.db"
    shutil.copyfile(TEMPLATE, path)
    now = time.time()
    today = math.floor(now / DAY) * DAY
    days = (today - int(meta["anchor"])) // DAY
    if days:
        shift(path, days * DAY)
    last_minute = math.floor(now / MINUTE) * MINUTE  # the current minute is not over
    clock = Clock(today)
    writer = Writer(path, clock, SEED + today)
    minute = today
    while minute < last_minute:
        writer.period(minute, 1)
        minute += MINUTE
    writer.store.apply_retention(last_minute, budget=3600.0)
    writer.close()
    return {
        "shifted_days": days,
        "top_up_minute_flushes": writer.flushes,
        "top_up_seconds": round(time.perf_counter() - started, 1),
        "data_until": last_minute,
        "path": str(path),
    }


def store_facts(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        rows = dict(
            conn.execute("SELECT resolution, COUNT(*) FROM samples GROUP BY resolution").fetchall()
        )
        series = conn.execute("SELECT COUNT(*) FROM series").fetchone()[0]
        oldest = conn.execute("SELECT MIN(start) FROM samples").fetchone()[0]
    finally:
        conn.close()
    return {
        "size_bytes": path.stat().st_size,
        "series": series,
        "minute_rows": rows.get(MINUTE, 0),
        "hour_rows": rows.get(HOUR, 0),
        "day_rows": rows.get(DAY, 0),
        "oldest_row": oldest,
    }


def bench_env(data_dir: Path) -> dict[str, str]:
    """The commands' environment: no .env file, our data dir, bytecode cached.

    ``PYTHONDONTWRITEBYTECODE`` (set in some sandboxes) would make every run compile
    the project's sources again, which an installed copy never does; the bytecode goes
    to a cache under ``benchmarks/.data/`` instead of the source tree.
    """
    env = isolated_env(data_dir)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "pycache")
    return env


Command = tuple[list[str], dict[str, str]]


def commands(env: dict[str, str], empty: Path) -> dict[str, Command]:
    metrics = [str(ASSISTANT), "monitor", "metrics"]
    cmds: dict[str, Command] = {
        "python -c pass": ([str(PYTHON), "-c", "pass"], env),
        "monitor metrics --period 1h": ([*metrics, "--period", "1h"], env),
        "monitor metrics --period 30d": ([*metrics, "--period", "30d"], env),
        "monitor metrics --period 1h --json": ([*metrics, "--period", "1h", "--json"], env),
        "monitor metrics --period 30d --json": ([*metrics, "--period", "30d", "--json"], env),
        "monitor metrics --period 1h, no store yet": (
            [*metrics, "--period", "1h"],
            bench_env(empty),
        ),
    }
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        inherited = isolated_env(RUN_DIR)
        cmds["monitor metrics --period 1h, PYTHONDONTWRITEBYTECODE=1 inherited"] = (
            [*metrics, "--period", "1h"],
            inherited,
        )
    return cmds


def check_output(name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run once and make sure the command saw the data (not an empty store)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, env=dict(env), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    if "--json" in argv:
        report = json.loads(done.stdout)
        if not report["has_data"] or report["pipeline"]["runs"] == 0:
            raise RuntimeError(f"{name}: no data in the window")
        if "30d" in argv and report["pipeline"]["runs"] < 50_000:
            raise RuntimeError(f"{name}: only {report['pipeline']['runs']} runs in 30 days")
    elif "No data" in done.stdout:
        raise RuntimeError(f"{name}: {done.stdout.strip()}")


def run_quiet_checked(argv: Sequence[str], env: Mapping[str, str]) -> None:
    code = subprocess.run(
        list(argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        check=False,
    ).returncode
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {code}")


def time_commands(cmds: Mapping[str, Command], runs: int) -> dict[str, list[float]]:
    for name, (argv, env) in cmds.items():
        if name.startswith("monitor") and "no store" not in name:
            check_output(name, argv, env)
        run_quiet_checked(argv, env)  # warm-up (page cache, bytecode cache)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, (argv, env) in cmds.items():
            times[name].append(time_call(lambda a=argv, e=env: run_quiet_checked(a, e)))
    return times


def time_in_process(env: Mapping[str, str], runs: int) -> dict[str, list[float]]:
    from assistant_monitoring.metrics.pricing import PriceTable
    from assistant_monitoring.metrics.query import query_window
    from assistant_monitoring.metrics.report import build_report
    from assistant_monitoring.metrics.service import metrics_report, resolve_window
    from assistant_monitoring.settings import load_settings

    settings = load_settings(environ=env).settings
    times: dict[str, list[float]] = {}
    for period in ("1h", "30d"):
        report = metrics_report(settings, period=period)  # warm-up, and a check
        if not report["has_data"]:
            raise RuntimeError(f"metrics_report({period}): no data")
        times[f"metrics_report(period={period!r})"] = [
            time_call(lambda p=period: metrics_report(settings, period=p)) for _ in range(runs)
        ]
        now = time.time()
        start, end, _ = resolve_window(period=period, since=None, until=None, now=now)
        store = MetricsStore(settings.monitoring_db_path)
        conn = store.connect()
        window = query_window(conn, start, end, now=now)

        def query(c: sqlite3.Connection = conn, s: float = start, e: float = end) -> None:
            query_window(c, s, e, now=e)

        times[f"  query_window ({period})"] = [time_call(query) for _ in range(runs)]
        store.close()

        def build(w: Any = window, p: str = period, table: PriceTable = PriceTable()) -> None:
            for aggregate in w.series:  # quantiles are cached per aggregate: start cold
                aggregate._merged = None
            build_report(w, period=p, prices=table)

        times[f"  build_report ({period})"] = [time_call(build) for _ in range(runs)]
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached template")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    watch = LoadWatch()
    meta, built = template_meta(args.rebuild)
    run = prepare_run(meta)
    facts = store_facts(RUN_DIR / "monitoring.db")
    env = bench_env(RUN_DIR)
    empty = ROOT / "empty"
    empty.mkdir(exist_ok=True)
    cli = time_commands(commands(env, empty), args.runs)
    in_process = time_in_process(env, args.runs)
    facts["size_bytes"] = (RUN_DIR / "monitoring.db").stat().st_size

    bare = median(cli["python -c pass"])
    cli_rows = []
    for name, values in cli.items():
        row: dict[str, Any] = {
            "command": name,
            "median_ms": median(values) * 1000,
            "min_ms": min(values) * 1000,
            "x_python": median(values) / bare,
            "minus_python_ms": (median(values) - bare) * 1000,
        }
        for period, target in TARGETS_S.items():
            if f"--period {period}" in name and "," not in name:
                row["target_ms"] = target * 1000
                row["met"] = median(values) < target
        cli_rows.append(row)
    process_rows = [
        {"call": name, "median_ms": median(values) * 1000, "min_ms": min(values) * 1000}
        for name, values in in_process.items()
    ]
    info = machine_info()
    load = watch.describe()
    if args.json:
        dump_json(
            {
                "machine": info,
                "load": watch.report(),
                "template": meta,
                "template_built_now": built,
                "run": run,
                "store": facts,
                "cli": cli_rows,
                "in_process": process_rows,
            }
        )
        return

    print_machine(info)
    print(
        f"store: {SERIES_COUNT} series, {DAYS} days: {meta['hourly_flushes']} hourly flushes "
        f"(days {DAYS} to 2 ago), then {meta['minute_flushes']} minute flushes (the last "
        f"{MINUTE_HOURS} h); {meta['pipeline_runs']:,} pipeline runs; template "
        + ("built now" if built else "cached")
        + f" ({meta['build_seconds']} s to build)"
    )
    print(
        f"this run: template shifted by {run['shifted_days']} day(s), topped up with "
        f"{run['top_up_minute_flushes']} minute flushes to the current minute "
        f"({run['top_up_seconds']} s)"
    )
    print(
        f"monitoring.db: {facts['size_bytes'] / 2**20:.1f} MiB, {facts['series']} series, "
        f"{facts['minute_rows']:,} minute rows, {facts['hour_rows']:,} hour rows, "
        f"{facts['day_rows']:,} day rows\n"
    )
    print(f"installed command, median of {args.runs} (ASSISTANT_DATA_DIR={RUN_DIR})")
    print_table(
        ["command", "median ms", "min ms", "x python", "- python ms", "target", "verdict"],
        [
            [
                row["command"],
                f"{row['median_ms']:.1f}",
                f"{row['min_ms']:.1f}",
                f"{row['x_python']:.1f}x",
                f"{row['minus_python_ms']:.1f}",
                f"< {row['target_ms']:.0f} ms" if "target_ms" in row else "-",
                verdict(row["met"]) if "met" in row else "-",
            ]
            for row in cli_rows
        ],
    )
    print(f"\nin process, median of {args.runs}")
    print_table(
        ["call", "median ms", "min ms"],
        [[row["call"], f"{row['median_ms']:.1f}", f"{row['min_ms']:.1f}"] for row in process_rows],
    )
    print(f"\n{load}")


if __name__ == "__main__":
    main()
