"""Flushing a process's metrics into ``monitoring.db``, and the accuracy of what comes back.

(a) Time of one ``MetricsRuntime.flush()`` of a process holding 100 series (56
counters, 7 gauges and 37 histograms of 20 observations each: the assistant's own
families, see ``_metrics_workload.py``), median of 30 flushes, each of a freshly
recorded registry:

* fresh store: a new ``monitoring.db`` every time (open, create the schema, write);
* warm store, new process: a new ``MetricsStore`` on a store that already holds
  those series (open, look the series ids up, merge): what each CLI run does;
* warm store, long-running process: one ``MetricsStore`` kept open across flushes
  (series ids cached): the periodic flush of a server;
* a 30-day store, new process: the same into a copy of the month of data that
  ``bench_metrics_query.py`` builds (skipped until that script has run once).

The scenarios take turns, flush after flush, so drift in the machine's speed hits
them alike. Flush times advance an injected clock by 20 s per flush, so the minute,
hour and day rows are merged into as well as inserted (and the store's 10-minute
retention pass runs when it is due, as in real use). Opening the store and closing
it (the WAL checkpoint of a process's exit) are timed on their own.

Target: one flush < 10 ms.

(b) Quantile error against the exact value for lognormal, bimodal and uniform data
(100,000 values each, seeded) at p50, p90, p95 and p99, through the real path:
``Histogram.observe`` -> ``MetricsRuntime.flush`` (10 flushes spread over 3 hours)
-> ``MetricsStore`` -> ``query_window`` -> ``SeriesAggregate.quantile``. The exact
value is the order statistic at the rank the sketch uses (``q * (n - 1)``); the error
against the linearly interpolated quantile is printed too.

Target: every error <= 1%.

Run: ``.venv/bin/python benchmarks/bench_metrics_flush.py [--flushes N] [--values N]
[--json]``. About 30 seconds with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    DATA_DIR,
    LoadWatch,
    dump_json,
    machine_info,
    print_machine,
    print_table,
    verdict,
)
from _metrics_workload import SERIES_COUNT, record_snapshot

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.query import query_window
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import MetricsStore

TARGET_FLUSH_MS = 10.0
TARGET_ERROR = 0.01
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
FLUSH_SPACING_SECONDS = 20.0
# The month of data bench_metrics_query.py builds (used when it exists).
MONTH_TEMPLATE = DATA_DIR / "metrics-query" / "template" / "monitoring.db"
MONTH_META = DATA_DIR / "metrics-query" / "template" / "meta.json"


class Clock:
    """An injected clock the benchmark moves forward by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorded_runtime(store: MetricsStore, rng: random.Random) -> MetricsRuntime:
    """A 'process' that recorded the 100 series, not yet flushed."""
    inst = Instrumentation(MetricsRegistry())
    record_snapshot(inst.metrics, rng)
    return MetricsRuntime(inst, store)


def timed_flush(runtime: MetricsRuntime) -> float:
    start = time.perf_counter()
    ok = runtime.flush()
    elapsed = time.perf_counter() - start
    if not ok:
        raise RuntimeError("flush failed")
    return elapsed


def flush_times(tmp: Path, flushes: int, rng: random.Random) -> dict[str, list[float]]:
    """Seconds per flush (and per open/close) for each scenario, scenarios taking turns."""
    clock = Clock(time.time() - flushes * 4 * FLUSH_SPACING_SECONDS)
    fresh, new, long_running = (
        "fresh store (new file, new process)",
        "warm store, new process",
        "warm store, long-running process",
    )
    opening, closing, taking = (
        "open a warm store (connect + schema check)",
        "close after a flush (WAL checkpoint)",
        "take_deltas of the 100 series (in the flush)",
    )
    results: dict[str, list[float]] = {
        name: [] for name in (fresh, new, long_running, opening, closing, taking)
    }

    # Check the workload once: exactly 100 series reach the store.
    probe = recorded_runtime(MetricsStore(tmp / "probe.db", clock=clock), rng)
    if len(probe.instrumentation.registry.take_deltas()) != SERIES_COUNT:
        raise RuntimeError("the workload does not record 100 series")

    # Two warm stores with a history (the series exist, rows to merge into): one for
    # the short processes, one kept open by the long-running one (a second open
    # connection would keep the first store's WAL from being checkpointed at close).
    warm, long_path = tmp / "warm.db", tmp / "long-running.db"
    for path in (warm, long_path):
        for _ in range(flushes):
            clock.now += FLUSH_SPACING_SECONDS
            store = MetricsStore(path, clock=clock)
            timed_flush(recorded_runtime(store, rng))
            store.close()
    long_store = MetricsStore(long_path, clock=clock)
    timed_flush(recorded_runtime(long_store, rng))  # connection open, ids cached
    month = month_store(tmp)
    month_name = ""
    if month is not None:
        month_path, anchor = month
        month_clock = Clock(anchor + 30)
        month_name = f"30-day store ({month_path.stat().st_size / 2**20:.0f} MiB), new process"
        results[month_name] = []
        store = MetricsStore(month_path, clock=month_clock)
        timed_flush(recorded_runtime(store, rng))  # warms the page cache
        store.close()

    for i in range(flushes):
        clock.now += FLUSH_SPACING_SECONDS
        store = MetricsStore(tmp / f"fresh-{i}.db", clock=clock)
        results[fresh].append(timed_flush(recorded_runtime(store, rng)))
        store.close()

        store = MetricsStore(warm, clock=clock)
        started = time.perf_counter()
        store.connect()
        results[opening].append(time.perf_counter() - started)
        store.close()
        store = MetricsStore(warm, clock=clock)
        results[new].append(timed_flush(recorded_runtime(store, rng)))
        started = time.perf_counter()
        store.close()
        results[closing].append(time.perf_counter() - started)

        results[long_running].append(timed_flush(recorded_runtime(long_store, rng)))
        registry = recorded_runtime(long_store, rng).instrumentation.registry
        started = time.perf_counter()
        registry.take_deltas()
        results[taking].append(time.perf_counter() - started)

        if month is not None:
            month_clock.now += FLUSH_SPACING_SECONDS
            store = MetricsStore(month_path, clock=month_clock)
            results[month_name].append(timed_flush(recorded_runtime(store, rng)))
            store.close()
    long_store.close()
    return results


def month_store(tmp: Path) -> tuple[Path, float] | None:
    """A copy of bench_metrics_query.py's 30-day store and its last instant, if built."""
    if not (MONTH_TEMPLATE.exists() and MONTH_META.exists()):
        return None
    meta = json.loads(MONTH_META.read_text())
    path = tmp / "month.db"
    shutil.copyfile(MONTH_TEMPLATE, path)
    return path, float(meta["anchor"])


# -- (b) quantile accuracy ---------------------------------------------------------


def lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(0.0, 1.0)


def bimodal(rng: random.Random) -> float:
    # Fast answers (cache hits, ~50 ms) and slow ones (LLM calls, ~2 s), 70/30.
    if rng.random() < 0.7:
        return rng.lognormvariate(math.log(0.05), 0.3)
    return rng.lognormvariate(math.log(2.0), 0.4)


def uniform(rng: random.Random) -> float:
    return rng.uniform(0.0, 10.0)


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "lognormal(0, 1)": lognormal,
    "bimodal (70% ~50 ms, 30% ~2 s)": bimodal,
    "uniform(0, 10)": uniform,
}


def interpolated(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def quantile_errors(tmp: Path, values_per_dist: int, seed: int) -> list[dict[str, Any]]:
    """Observe, flush 10 times over 3 hours, query the window, compare quantiles."""
    flushes = 10
    end = math.floor(time.time() / 60) * 60
    start = end - 3 * 3600
    clock = Clock(start)
    path = tmp / "accuracy.db"
    inst = Instrumentation(MetricsRegistry())
    family = inst.metrics.llm_duration
    data: dict[str, list[float]] = {}
    for index, (name, draw) in enumerate(DISTRIBUTIONS.items()):
        rng = random.Random(seed + index)
        data[name] = [draw(rng) for _ in range(values_per_dist)]
    store = MetricsStore(path, clock=clock)
    runtime = MetricsRuntime(inst, store)
    chunk = math.ceil(values_per_dist / flushes)
    for flush in range(flushes):
        clock.now = start + 30 + flush * (3 * 3600 - 120) / (flushes - 1)
        for name, values in data.items():
            child = family.labels("bench", name)
            for value in values[flush * chunk : (flush + 1) * chunk]:
                child.observe(value)
        if not runtime.flush():
            raise RuntimeError("flush failed")
    store.close()

    reader = MetricsStore(path)
    try:
        window = query_window(reader.connect(), start, end, now=end)
    finally:
        reader.close()
    rows = []
    for name, values in data.items():
        aggregate = window.combined(family.name, model=name)
        if aggregate is None or aggregate.count != len(values):
            raise RuntimeError(f"{name}: the window holds {aggregate and aggregate.count} values")
        ordered = sorted(values)
        for label, q in QUANTILES.items():
            estimate = aggregate.quantile(q)
            assert estimate is not None
            exact = ordered[math.floor(q * (len(ordered) - 1))]
            smooth = interpolated(ordered, q)
            rows.append(
                {
                    "distribution": name,
                    "quantile": label,
                    "exact": exact,
                    "estimate": estimate,
                    "error": abs(estimate - exact) / exact,
                    "error_vs_interpolated": abs(estimate - smooth) / smooth,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flushes", type=int, default=30, help="timed flushes per scenario")
    parser.add_argument("--values", type=int, default=100_000, help="values per distribution")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    watch = LoadWatch()
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-flush-"))
    try:
        times = flush_times(tmp, args.flushes, random.Random(args.seed))
        errors = quantile_errors(tmp, args.values, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    flush_rows = []
    for name, values in times.items():
        is_flush = "process" in name
        median_ms = statistics.median(values) * 1000
        flush_rows.append(
            {
                "case": name,
                "median_ms": median_ms,
                "min_ms": min(values) * 1000,
                "max_ms": max(values) * 1000,
                "runs": len(values),
                "met": median_ms < TARGET_FLUSH_MS if is_flush else None,
            }
        )
    worst = max(row["error"] for row in errors)
    worst_interpolated = max(row["error_vs_interpolated"] for row in errors)
    info = machine_info()
    if args.json:
        dump_json(
            {
                "machine": info,
                "load": watch.report(),
                "flush": flush_rows,
                "flush_target_ms": TARGET_FLUSH_MS,
                "quantiles": errors,
                "worst_error": worst,
                "worst_error_vs_interpolated": worst_interpolated,
                "error_target": TARGET_ERROR,
            }
        )
        return

    print_machine(info)
    print(
        f"\n(a) one flush of {SERIES_COUNT} series (56 counters, 7 gauges, 37 histograms x 20 "
        f"observations), {args.flushes} flushes each, clock +{FLUSH_SPACING_SECONDS:.0f} s "
        "per flush"
    )
    print_table(
        ["case", "median ms", "min ms", "max ms", f"target < {TARGET_FLUSH_MS:.0f} ms"],
        [
            [
                row["case"],
                f"{row['median_ms']:.2f}",
                f"{row['min_ms']:.2f}",
                f"{row['max_ms']:.2f}",
                "-" if row["met"] is None else verdict(row["met"]),
            ]
            for row in flush_rows
        ],
    )
    print(
        f"\n(b) quantile error, {args.values:,} values per distribution, observe -> 10 flushes "
        "over 3 h -> store -> query_window -> quantile"
    )
    print_table(
        ["distribution", "q", "exact", "ours", "error", "vs interpolated"],
        [
            [
                row["distribution"],
                row["quantile"],
                f"{row['exact']:.6g}",
                f"{row['estimate']:.6g}",
                f"{row['error']:.3%}",
                f"{row['error_vs_interpolated']:.3%}",
            ]
            for row in errors
        ],
    )
    print(
        f"worst error {worst:.3%} (vs interpolated {worst_interpolated:.3%}); "
        f"target <= {TARGET_ERROR:.0%}: {verdict(worst <= TARGET_ERROR)}"
    )
    print(f"\n{watch.describe()}")


if __name__ == "__main__":
    main()
