"""Flushing a process's metrics into ``monitoring.db``, and the accuracy of what comes back.

(a) Time of one ``MetricsRuntime.flush()`` of a process holding 100 series (56
counters, 7 gauges and 37 histograms of 20 observations each: the assistant's own
families, see ``_metrics_workload.py``), each of a freshly recorded registry. Each
scenario is a pyperf benchmark (``Runner.bench_time_func``; only the flush is
timed, the recording and the opening and closing around it are not), run in
pyperf's worker processes:

* fresh store: a new ``monitoring.db`` every time (open, create the schema, write);
* warm store, new process: a new ``MetricsStore`` on a store that already holds
  those series (open, look the series ids up, merge): what each CLI run does;
* warm store, long-running process: one ``MetricsStore`` kept open across flushes
  (series ids cached): the periodic flush of a server;
* a 30-day store, new process: the same into a copy of the month of data that
  ``bench_metrics_query.py`` builds (skipped until that script has run once).

The master builds the two warm stores (30 flushes each) and copies the month once;
the workers, one after the other, flush into them. Flush times come from an
injected clock that moves 20 s per flush (and, between workers, 1,000 s per real
second, so that no two workers write the same minutes), so the minute, hour and day
rows are merged into as well as inserted (and the store's 10-minute retention pass
runs when it is due, as in real use). Opening a warm store, closing it after a
flush (the WAL checkpoint of a process's exit) and ``take_deltas`` are timed on
their own.

Target: one flush < 10 ms (the median of pyperf's values).

(b) Quantile error against the exact value for lognormal, bimodal and uniform data
(100,000 values each, seeded) at p50, p90, p95 and p99, through the real path:
``Histogram.observe`` -> ``MetricsRuntime.flush`` (10 flushes spread over 3 hours)
-> ``MetricsStore`` -> ``query_window`` -> ``SeriesAggregate.quantile``. The exact
value is the order statistic at the rank the sketch uses (``q * (n - 1)``); the error
against the linearly interpolated quantile is printed too. Not a timing: computed
once, in the master, after the benchmarks.

Target: every error <= 1%.

Run: ``.venv/bin/python benchmarks/bench_metrics_flush.py [--quantile-values N] [--seed S]
[--fast] [-o FILE.json]`` (and any other pyperf option).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyperf
from _common import DATA_DIR
from _metrics_workload import SERIES_COUNT, record_snapshot
from _perf_inprocess import Load, annotate, done, is_master, make_runner, median, verdict

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.query import query_window
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import MetricsStore

TARGET_FLUSH_MS = 10.0
TARGET_ERROR = 0.01
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
FLUSH_SPACING_SECONDS = 20.0
WARM_FLUSHES = 30
FAKE_SECONDS_PER_SECOND = 1000.0  # between workers
# The month of data bench_metrics_query.py builds (used when it exists).
MONTH_TEMPLATE = DATA_DIR / "metrics-query" / "template" / "monitoring.db"
MONTH_META = DATA_DIR / "metrics-query" / "template" / "meta.json"

FRESH = "fresh store (new file, new process)"
NEW = "warm store, new process"
LONG_RUNNING = "warm store, long-running process"
OPENING = "open a warm store (connect + schema check)"
CLOSING = "close after a flush (WAL checkpoint)"
TAKING = "take_deltas of the 100 series (in the flush)"


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


# -- (a) the master's stores, the workers' scenarios -------------------------------


def prepare(work: Path, seed: int) -> dict[str, Any]:
    """Master: the warm stores and the month's copy in ``work``; what workers need."""
    rng = random.Random(seed)
    clock = Clock(time.time() - WARM_FLUSHES * 4 * FLUSH_SPACING_SECONDS)
    probe = recorded_runtime(MetricsStore(work / "probe.db", clock=clock), rng)
    if len(probe.instrumentation.registry.take_deltas()) != SERIES_COUNT:
        raise RuntimeError("the workload does not record 100 series")
    # Two warm stores with a history (the series exist, rows to merge into): one for
    # the short processes, one kept open by the long-running ones (a second open
    # connection would keep the first store's WAL from being checkpointed at close).
    for path in (work / "warm.db", work / "long-running.db"):
        for _ in range(WARM_FLUSHES):
            clock.now += FLUSH_SPACING_SECONDS
            store = MetricsStore(path, clock=clock)
            timed_flush(recorded_runtime(store, rng))
            store.close()
    state: dict[str, Any] = {"started": time.time(), "month": None}
    if MONTH_TEMPLATE.exists() and MONTH_META.exists():
        path = work / "month.db"
        shutil.copyfile(MONTH_TEMPLATE, path)
        anchor = float(json.loads(MONTH_META.read_text())["anchor"])
        store = MetricsStore(path, clock=Clock(anchor + 30))
        timed_flush(recorded_runtime(store, rng))  # warms the page cache
        store.close()
        size = path.stat().st_size / 2**20
        state["month"] = {"anchor": anchor, "name": f"30-day store ({size:.0f} MiB), new process"}
    (work / "state.json").write_text(json.dumps(state))
    # Write the copies back now: left to the kernel, the 75 MiB month copy is written
    # back during the first benchmark, and the fsyncs of its flushes wait for it (the
    # fresh store's median tripled).
    os.sync()
    return state


class Worker:
    """One worker's view: the master's stores, its clock, its random numbers."""

    def __init__(self, work: Path, seed: int) -> None:
        self.work = work
        self.state = json.loads((work / "state.json").read_text())
        self.rng = random.Random(seed + int(time.time() * 1000) % 100_000)
        offset = (time.time() - self.state["started"]) * FAKE_SECONDS_PER_SECOND
        self.clock = Clock(time.time() + offset)
        month = self.state["month"]
        self.month_clock = Clock(month["anchor"] + 30 + offset) if month else None
        self.own = Path(tempfile.mkdtemp(prefix="bench-metrics-flush-"))
        atexit.register(shutil.rmtree, self.own, ignore_errors=True)
        self.fresh = 0

    def tick(self, clock: Clock | None = None) -> Clock:
        clock = clock or self.clock
        clock.now += FLUSH_SPACING_SECONDS
        return clock

    @functools.cached_property
    def long_store(self) -> MetricsStore:
        store = MetricsStore(self.work / "long-running.db", clock=self.clock)
        timed_flush(recorded_runtime(store, self.rng))  # connection open, ids cached
        atexit.register(store.close)
        return store


_worker: Worker | None = None


def worker(runner: pyperf.Runner) -> Worker:
    global _worker
    if _worker is None:
        _worker = Worker(Path(runner.args.workdir), runner.args.seed)
    return _worker


def fresh(w: Worker) -> float:
    w.fresh += 1
    path = w.own / f"fresh-{w.fresh}.db"
    store = MetricsStore(path, clock=w.tick())
    elapsed = timed_flush(recorded_runtime(store, w.rng))
    store.close()
    for leftover in w.own.glob(f"{path.name}*"):
        leftover.unlink()
    return elapsed


def new_process(w: Worker, path: Path, clock: Clock) -> float:
    store = MetricsStore(path, clock=w.tick(clock))
    elapsed = timed_flush(recorded_runtime(store, w.rng))
    store.close()
    return elapsed


def long_running(w: Worker) -> float:
    w.tick()
    return timed_flush(recorded_runtime(w.long_store, w.rng))


def opening(w: Worker) -> float:
    store = MetricsStore(w.work / "warm.db", clock=w.clock)
    started = time.perf_counter()
    store.connect()
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def closing(w: Worker) -> float:
    store = MetricsStore(w.work / "warm.db", clock=w.tick())
    timed_flush(recorded_runtime(store, w.rng))
    started = time.perf_counter()
    store.close()
    return time.perf_counter() - started


def taking(w: Worker) -> float:
    inst = Instrumentation(MetricsRegistry())
    record_snapshot(inst.metrics, w.rng)
    started = time.perf_counter()
    inst.registry.take_deltas()
    return time.perf_counter() - started


def scenarios(state: dict[str, Any] | None) -> dict[str, Callable[[Worker], float]]:
    """Each benchmark's one timed step (the same list in the master and the workers)."""
    steps: dict[str, Callable[[Worker], float]] = {
        FRESH: fresh,
        NEW: lambda w: new_process(w, w.work / "warm.db", w.clock),
        LONG_RUNNING: long_running,
    }
    if state and state["month"]:

        def month(w: Worker) -> float:
            assert w.month_clock is not None
            return new_process(w, w.work / "month.db", w.month_clock)

        steps[state["month"]["name"]] = month
    steps.update({OPENING: opening, CLOSING: closing, TAKING: taking})
    return steps


def time_steps(loops: int, runner: pyperf.Runner, step: Callable[[Worker], float]) -> float:
    """pyperf's time function: the sum of ``loops`` timed steps (setup not counted)."""
    w = worker(runner)
    return sum(step(w) for _ in range(loops))


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


def model_label(distribution: str) -> str:
    """The distribution's values go under this model (labels come from closed sets: a
    provider the family knows, a model name of letters, digits and ``._:/@+-``)."""
    return "bench-" + distribution.split("(", maxsplit=1)[0].strip()


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
            child = family.labels("anthropic", model_label(name))
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
        aggregate = window.combined(family.name, model=model_label(name))
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quantile-values",
        dest="dist_values",
        type=int,
        default=100_000,
        help="values per distribution for the quantile errors",
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)


def main() -> None:
    runner = make_runner(__doc__ or "", add_arguments, forward=["--seed", "--workdir"])
    args = runner.args
    load: Load | None = None
    work: Path | None = None
    if is_master(runner):
        load = Load()
        work = Path(tempfile.mkdtemp(prefix="bench-metrics-flush-"))
        args.workdir = str(work)
    try:
        state = (
            prepare(work, args.seed)
            if work
            else json.loads((Path(args.workdir) / "state.json").read_text())
        )
        benches = {
            name: runner.bench_time_func(name, time_steps, runner, step)
            for name, step in scenarios(state).items()
        }
        if load is None or work is None:
            return
        results = done(benches)
        errors = quantile_errors(work, args.dist_values, args.seed)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{load.machine(list(results.values()))}")
    print(
        f"\n(a) one flush of {SERIES_COUNT} series (56 counters, 7 gauges, 37 histograms x 20 "
        f"observations), clock +{FLUSH_SPACING_SECONDS:.0f} s per flush; medians"
    )
    annotations: dict[str, dict[str, Any]] = {}
    for name, bench in results.items():
        value_ms = median(bench) * 1000
        line = f"  {name:<50} {value_ms:>7.2f} ms"
        annotations[name] = dict(load.metadata())
        if "process" in name:
            met = value_ms < TARGET_FLUSH_MS
            line += f"  {value_ms / TARGET_FLUSH_MS:.2f}x the target: {verdict(met)}"
            annotations[name].update(target_ms=TARGET_FLUSH_MS, target_met=verdict(met))
        print(line)
    print(
        f"\n(b) quantile error, {args.dist_values:,} values per distribution, observe -> 10 "
        "flushes over 3 h -> store -> query_window -> quantile"
    )
    print(
        f"  {'distribution':<32} {'q':<4} {'exact':>10} {'ours':>10} {'error':>7} "
        f"{'vs interp.':>10}"
    )
    for row in errors:
        print(
            f"  {row['distribution']:<32} {row['quantile']:<4} {row['exact']:>10.6g} "
            f"{row['estimate']:>10.6g} {row['error']:>7.3%} {row['error_vs_interpolated']:>10.3%}"
        )
    worst = max(row["error"] for row in errors)
    worst_interpolated = max(row["error_vs_interpolated"] for row in errors)
    print(
        f"worst error {worst:.3%} (vs interpolated {worst_interpolated:.3%}); "
        f"target <= {TARGET_ERROR:.0%}: {verdict(worst <= TARGET_ERROR)}"
    )
    for entry in annotations.values():
        entry.update(
            worst_quantile_error=round(worst, 6), quantile_target_met=verdict(worst <= TARGET_ERROR)
        )
    annotate(runner, annotations)
    print(f"\n{load.describe()}")


if __name__ == "__main__":
    main()
