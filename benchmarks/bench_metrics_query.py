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

Measured, in the same run, as pyperf benchmarks in pyperf's worker processes:

* the installed command, ``.venv/bin/assistant monitor metrics --period 1h`` and
  ``--period 30d`` (tables, and ``--json``), by ``Runner.bench_command`` with
  ``ASSISTANT_ENV_FILE=none ASSISTANT_DATA_DIR=<the run's data dir>`` and bytecode
  cached (``_perf.py``), against ``.venv/bin/python -c pass``; each command's output
  is checked once before. Two more rows put the figures in context: the same command
  on a data dir with no store yet (the command's fixed cost: start-up, settings,
  imports), and, when the environment sets ``PYTHONDONTWRITEBYTECODE``, the command
  with it set and no bytecode cached (the project's sources compiled at every run);
* in process (``bench_func``/``bench_time_func``, settings loaded once per worker):
  ``metrics_report(settings, period=...)`` for 1h and 30d, and its two halves
  (``query_window`` and ``build_report``);
* the store's size, and its rows per resolution.

Targets: ``--period 1h`` < 300 ms, ``--period 30d`` < 600 ms (median wall time of
the installed command).

Run: ``.venv/bin/python benchmarks/bench_metrics_query.py [--rebuild] [--fast]
[-o FILE.json]`` (and any other pyperf option). About 1.5 minutes the first time
(builds the template), then 1.5 to 3 minutes (the top-up is longer late in the UTC
day).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import ASSISTANT, DATA_DIR, PYTHON
from _metrics_workload import SERIES_COUNT, record_activity
from _perf import CommandBench, Target, command_env, machine, median, summary, verdict
from _perf_inprocess import Load

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


REFERENCE = "python -c pass"
DONT_WRITE = "monitor metrics --period 1h, PYTHONDONTWRITEBYTECODE=1, nothing cached"


def commands(dont_write: bool) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each timed command and its whole environment."""
    env = command_env(ASSISTANT_DATA_DIR=str(RUN_DIR))
    metrics = [str(ASSISTANT), "monitor", "metrics"]
    cmds = {
        REFERENCE: ([str(PYTHON), "-c", "pass"], env),
        "monitor metrics --period 1h": ([*metrics, "--period", "1h"], env),
        "monitor metrics --period 30d": ([*metrics, "--period", "30d"], env),
        "monitor metrics --period 1h --json": ([*metrics, "--period", "1h", "--json"], env),
        "monitor metrics --period 30d --json": ([*metrics, "--period", "30d", "--json"], env),
        "monitor metrics --period 1h, no store yet": (
            [*metrics, "--period", "1h"],
            command_env(ASSISTANT_DATA_DIR=str(ROOT / "empty")),
        ),
    }
    if dont_write:
        # An empty cache folder and no writing: every run compiles our sources, as a
        # shell with PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the tree does.
        cmds[DONT_WRITE] = (
            [*metrics, "--period", "1h"],
            command_env(
                ASSISTANT_DATA_DIR=str(RUN_DIR),
                PYTHONDONTWRITEBYTECODE="1",
                PYTHONPYCACHEPREFIX=str(ROOT / "no-pycache"),
            ),
        )
    return cmds


@functools.cache
def _settings() -> Any:
    from assistant_monitoring.settings import load_settings

    return load_settings(environ=dict(os.environ)).settings


def _report(period: str) -> Callable[[], object]:
    from assistant_monitoring.metrics.service import metrics_report

    def call() -> object:
        return metrics_report(_settings(), period=period)

    return call


@functools.cache
def _window(period: str) -> tuple[sqlite3.Connection, float, float, Any]:
    """A connection to the run's store, the period's bounds, and its window (once)."""
    from assistant_monitoring.metrics.query import query_window
    from assistant_monitoring.metrics.service import resolve_window

    now = time.time()
    start, end, _ = resolve_window(period=period, since=None, until=None, now=now)
    conn = MetricsStore(_settings().monitoring_db_path).connect()
    return conn, start, end, query_window(conn, start, end, now=now)


def _time_query(period: str) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        from assistant_monitoring.metrics.query import query_window

        conn, start, end, _ = _window(period)
        began = time.perf_counter()
        for _ in range(loops):
            query_window(conn, start, end, now=end)
        return time.perf_counter() - began

    return time_func


def _time_build(period: str) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        from assistant_monitoring.metrics.report import build_report
        from assistant_monitoring.pricing import PriceTable

        window, table, elapsed = _window(period)[3], PriceTable(), 0.0
        for _ in range(loops):
            for aggregate in window.series:  # quantiles are cached per aggregate: start cold
                aggregate._merged = None
            began = time.perf_counter()
            build_report(window, period=period, prices=table)
            elapsed += time.perf_counter() - began
        return elapsed

    return time_func


IN_PROCESS = [
    f"{name} ({period})"
    for period in ("1h", "30d")
    for name in ("metrics_report", "query_window", "build_report")
]


def run_benchmarks(
    bench: CommandBench, cmds: Mapping[str, tuple[list[str], dict[str, str]]]
) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    for name, (argv, env) in cmds.items():
        bench.command(name, argv, env)
    env = cmds["monitor metrics --period 1h"][1]
    for period in ("1h", "30d"):
        bench.func(f"metrics_report ({period})", _report(period), env)
        bench.time_func(f"query_window ({period})", _time_query(period), env)
        bench.time_func(f"build_report ({period})", _time_build(period), env)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached template")


def main() -> None:
    bench = CommandBench(__doc__ or "", processes=10, values=3, add_arguments=add_arguments)
    if bench.is_worker:
        run_benchmarks(bench, commands(bool(bench.state["dont_write"])))
        return

    load = Load()
    meta, built = template_meta(bench.args.rebuild)
    run = prepare_run(meta)
    facts = store_facts(RUN_DIR / "monitoring.db")
    (ROOT / "empty").mkdir(exist_ok=True)
    shutil.rmtree(ROOT / "no-pycache", ignore_errors=True)
    (ROOT / "no-pycache").mkdir()
    cmds = commands(dont_write=bool(os.environ.get("PYTHONDONTWRITEBYTECODE")))
    for name, (argv, env) in cmds.items():
        if name.startswith("monitor") and "no store" not in name:
            check_output(name, argv, env)
        else:
            bench.check(argv, env)
    bench.share(dont_write=DONT_WRITE in cmds)
    run_benchmarks(bench, cmds)
    facts["size_bytes"] = (RUN_DIR / "monitoring.db").stat().st_size

    results = bench.results
    targets = {
        name: Target(f"< {target * 1000:.0f} ms", median(results[name]) < target)
        for period, target in TARGETS_S.items()
        for name in cmds
        if f"--period {period}" in name and "," not in name
    }
    print()
    print(machine(list(results.values())))
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
        f"{facts['day_rows']:,} day rows"
    )
    derived = summary(
        {name: results[name] for name in cmds},
        REFERENCE,
        targets,
        title=f"installed command (ASSISTANT_DATA_DIR={RUN_DIR})",
    )
    derived |= summary(
        {name: results[name] for name in IN_PROCESS},
        IN_PROCESS[0],
        title="in process",
    )
    bench.annotate({name: {**entry, **load.metadata()} for name, entry in derived.items()})
    print()
    for name, target in targets.items():
        print(f"target {name} {target.text}: {verdict(target.met)}")
    print(load.describe())


if __name__ == "__main__":
    main()
