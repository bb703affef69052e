"""Cost of one metric update on the hot path, in nanoseconds per operation.

Each case is a pyperf benchmark (``Runner.bench_time_func`` around
``timeit.Timer(stmt).timeit(loops)``, the garbage collector off as in ``timeit``),
run in pyperf's worker processes; the namespace a case needs is built lazily in
the worker that runs it:

* floor: ``d[k] = d.get(k, 0) + 1`` on a dict, the least a counter can cost;
* ours (``assistant_monitoring.metrics``): a labelled counter ``c.labels("a",
  "b").inc()`` (label lookup included), the cached child ``child.inc()``, a
  histogram with labels ``h.labels("generate").observe(0.123)``, and a timed stage
  ``with inst.stage("generate"): pass`` (Timer creation, enter, exit, a counter
  increment and a histogram observation) on ``Instrumentation(MetricsRegistry())``;
* prometheus_client, on a fresh ``CollectorRegistry()``: ``.labels(a, b).inc()``,
  the cached child's ``.inc()``, ``Histogram.labels(x).observe()``, and the same
  work as our timed stage (``with h.labels(x).time(): pass`` then a labelled
  counter increment);
* opentelemetry-sdk, with a ``MeterProvider`` and an ``InMemoryMetricReader``:
  ``Counter.add(1, {"a": .., "b": ..})`` and ``Histogram.record(0.123, {..})``;
* the timed stage and the histogram observation part by part (``stage: ...``,
  ``observe: ...``), to show where the time goes (``--no-parts`` skips them).

A peer library that is not installed is reported as "not installed". After every
value our counters are checked to hold exactly what the loop added.

Targets (ours): labelled counter increment incl. label lookup <= 400 ns; histogram
observe with labels <= 900 ns; timed stage <= 2 us. They were set on a reference
machine where the dict floor is ~51 ns, prometheus_client's labelled inc ~1,300 ns
(cached child ~350 ns), its Histogram.observe ~830 ns and OpenTelemetry's
Counter.add ~6,400 ns. Every figure (the median of pyperf's values) is printed as a ratio to the
in-run dict floor and to the in-run prometheus_client equivalent, and the verdict
is given both in ns and as those ratios. ``--cprofile`` adds a cProfile of the
timed stage.

Run: ``.venv/bin/python benchmarks/bench_metrics_ops.py [--fast] [-o FILE.json]
[--no-parts] [--cprofile]`` (and any other pyperf option). About 2.5 minutes with
``--fast`` on 2 cores shared with a test suite; about twice that with pyperf's defaults.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import threading
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pyperf
from _perf_inprocess import Load, annotate, done, is_master, make_runner, median, verdict

REFERENCE_DICT_NS = 51.0
REFERENCES_NS = {
    "dict floor": 51.0,
    "prometheus_client labels(a,b).inc()": 1300.0,
    "prometheus_client child.inc()": 350.0,
    "prometheus_client Histogram.labels(x).observe()": 830.0,
    "otel Counter.add(1, attrs)": 6400.0,
}
PROM = "prometheus_client "
Namespace = dict[str, Any]
Check = Callable[[Namespace], int]  # what the namespace counted so far


@dataclass(frozen=True)
class Case:
    """One timed statement, the namespace it runs in, and what it is compared with."""

    name: str
    stmt: str
    namespace: Callable[[], Namespace]  # built lazily, once per worker
    peer: str | None = None  # the prometheus_client case it is compared with
    target_ns: float | None = None
    counted: Check | None = None  # checked to grow by exactly the loops run
    needs: str | None = None  # the distribution it needs, if not ours


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def floor_ns() -> Namespace:
    return {"d": {}, "k": ("a", "b")}


@functools.cache
def ours_ns() -> Namespace:
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry

    registry = MetricsRegistry()
    counter = registry.counter("bench_ops_total", "Benchmark counter.", ["a", "b"])
    histogram = registry.histogram("bench_stage_seconds", "Benchmark histogram.", ["stage"])
    return {
        "c": counter,
        "child": counter.labels("a", "b"),
        "h": histogram,
        "inst": Instrumentation(MetricsRegistry()),
    }


@functools.cache
def prometheus_ns() -> Namespace:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    counter = Counter("bench_ops", "Benchmark counter.", ["a", "b"], registry=registry)
    histogram = Histogram(
        "bench_stage_seconds", "Benchmark histogram.", ["stage"], registry=registry
    )
    runs = Counter(
        "bench_stage_runs", "Benchmark stage runs.", ["stage", "status"], registry=registry
    )
    return {"c": counter, "child": counter.labels("a", "b"), "h": histogram, "runs": runs}


@functools.cache
def otel_ns() -> Namespace:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    return {
        "oc": meter.create_counter("bench_ops"),
        "oh": meter.create_histogram("bench_stage_seconds", unit="s"),
    }


@functools.cache
def parts_ns() -> Namespace:
    from assistant_monitoring.metrics.instrument import Instrumentation, Timer
    from assistant_monitoring.metrics.registry import MetricsRegistry

    inst = Instrumentation(MetricsRegistry())

    def noop(_seconds: float, _error: BaseException | None) -> None:
        return None

    return {
        "inst": inst,
        "m": inst.metrics,
        "Timer": Timer,
        "noop": noop,
        "timer": Timer(noop),
        "perf_counter": time.perf_counter,
        "hc": inst.metrics.stage_duration.labels("generate"),
        "lock": threading.Lock(),
    }


def _child_value(ns: Namespace) -> int:
    return int(ns["child"].value)


def _stage_runs(ns: Namespace) -> int:
    return int(ns["inst"].metrics.stage_runs.labels("generate", "success").value)


CASES = [
    Case("dict floor", "d[k] = d.get(k, 0) + 1", floor_ns),
    Case(
        "ours labels(a,b).inc()",
        "c.labels('a', 'b').inc()",
        ours_ns,
        PROM + "labels(a,b).inc()",
        400.0,
        _child_value,
    ),
    Case("ours child.inc()", "child.inc()", ours_ns, PROM + "child.inc()", counted=_child_value),
    Case(
        "ours Histogram.labels(x).observe()",
        "h.labels('generate').observe(0.123)",
        ours_ns,
        PROM + "Histogram.labels(x).observe()",
        900.0,
    ),
    Case(
        "ours with inst.stage(x): pass",
        "with inst.stage('generate'): pass",
        ours_ns,
        PROM + "stage equivalent",
        2000.0,
        _stage_runs,
    ),
    *(
        Case(PROM + name, stmt, prometheus_ns, PROM + name, needs="prometheus_client")
        for name, stmt in (
            ("labels(a,b).inc()", "c.labels('a', 'b').inc()"),
            ("child.inc()", "child.inc()"),
            ("Histogram.labels(x).observe()", "h.labels('generate').observe(0.123)"),
            (
                "stage equivalent",
                "with h.labels('generate').time(): pass\nruns.labels('generate', 'success').inc()",
            ),
        )
    ),
    Case(
        "otel Counter.add(1, attrs)",
        "oc.add(1, {'a': 'a', 'b': 'b'})",
        otel_ns,
        PROM + "labels(a,b).inc()",
        needs="opentelemetry-sdk",
    ),
    Case(
        "otel Histogram.record(0.123, attrs)",
        "oh.record(0.123, {'stage': 'generate'})",
        otel_ns,
        PROM + "Histogram.labels(x).observe()",
        needs="opentelemetry-sdk",
    ),
]

PARTS = [
    Case("stage: inst.stage(x) (closure, lambda, Timer)", "inst.stage('generate')", parts_ns),
    Case("stage: Timer(no-op) construction", "Timer(noop, clock=perf_counter)", parts_ns),
    Case("stage: with <built Timer(no-op)>: pass", "with timer: pass", parts_ns),
    Case("stage: perf_counter()", "perf_counter()", parts_ns),
    Case(
        "stage: stage_runs.labels(x, status).inc()",
        "m.stage_runs.labels('generate', 'success').inc()",
        parts_ns,
    ),
    Case(
        "stage: stage_duration.labels(x).observe(v)",
        "m.stage_duration.labels('generate').observe(0.123)",
        parts_ns,
    ),
    Case("observe: cached child .observe(v)", "hc.observe(0.123)", parts_ns),
    Case("observe: 'with lock: pass' (its lock)", "with lock: pass", parts_ns),
    Case("observe: 'x = min(x, v)' (one of two)", "hc.min = min(hc.min, 0.123)", parts_ns),
]


def time_case(loops: int, case: Case) -> float:
    """pyperf's time function: ``loops`` runs of the statement, in seconds."""
    ns = case.namespace()
    before = case.counted(ns) if case.counted else 0
    elapsed = timeit.Timer(case.stmt, globals=ns).timeit(loops)
    if case.counted and case.counted(ns) - before != loops:
        raise RuntimeError(f"{case.name}: counted {case.counted(ns) - before}, ran {loops}")
    return elapsed


def profile_stage(ops: int) -> str:
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry

    inst = Instrumentation(MetricsRegistry())
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(ops):
        with inst.stage("generate"):
            pass
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-parts", action="store_true", help="skip the part-by-part cases")
    parser.add_argument(
        "--cprofile", action="store_true", help="also cProfile 200,000 timed stages"
    )


def report(
    runner: pyperf.Runner, benches: dict[str, pyperf.Benchmark], missing: dict[str, str]
) -> dict[str, dict[str, str | float]]:
    """Print the ratios and verdicts; return them as metadata for ``-o``."""
    floor = median(benches["dict floor"])
    scale = REFERENCE_DICT_NS / (floor * 1e9)
    print(
        f"\nprometheus_client {version_of('prometheus_client')}, opentelemetry-sdk "
        f"{version_of('opentelemetry-sdk')}; medians of pyperf's values. In-run dict floor "
        f"{floor * 1e9:.0f} ns vs ~{REFERENCE_DICT_NS:.0f} ns on the reference machine: by "
        f"that yardstick this machine runs at {scale:.2f}x the reference speed.\n"
    )
    print(f"{'case':<50} {'ns/op':>7} {'x dict':>7} {'x prom':>7} {'ns@ref':>7} {'ref ns':>7}")
    annotations: dict[str, dict[str, str | float]] = {}
    for case in CASES:
        reference = REFERENCES_NS.get(case.name)
        ref = f"{reference:,.0f}" if reference else "-"
        if case.name in missing:
            print(f"{case.name:<50} {missing[case.name]:>7} {'':>7} {'':>7} {'':>7} {ref:>7}")
            continue
        value = median(benches[case.name])
        peer = benches.get(case.peer or "")
        x_prom = value / median(peer) if peer is not None else None
        prom = f"{x_prom:.2f}x" if x_prom is not None else "-"
        print(
            f"{case.name:<50} {value * 1e9:>7,.0f} {value / floor:>6.1f}x {prom:>7} "
            f"{value * 1e9 * scale:>7,.0f} {ref:>7}"
        )
        annotations[case.name] = {"ratio_vs_dict_floor": round(value / floor, 3)}
        if x_prom is not None:
            annotations[case.name]["ratio_vs_prometheus_client"] = round(x_prom, 3)
    print(
        "x prom: against the prometheus_client equivalent in this run; ns@ref: ns scaled by "
        "the dict floor to the reference machine; ref ns: measured there."
    )

    print("\nTargets (ours), in ns as measured and as ratios to the in-run references:")
    for case in CASES:
        if case.target_ns is None:
            continue
        value_ns = median(benches[case.name]) * 1e9
        x_dict, target_x_dict = value_ns / 1e9 / floor, case.target_ns / REFERENCE_DICT_NS
        line = (
            f"  {case.name}: {value_ns:,.0f} / {case.target_ns:,.0f} ns "
            f"{verdict(value_ns <= case.target_ns)}; x dict {x_dict:.1f}x / "
            f"{target_x_dict:.1f}x {verdict(x_dict <= target_x_dict)}"
        )
        entry = annotations[case.name]
        entry.update(target_ns=case.target_ns, target_ns_met=verdict(value_ns <= case.target_ns))
        entry.update(
            target_x_dict=round(target_x_dict, 3), x_dict_met=verdict(x_dict <= target_x_dict)
        )
        peer_reference = REFERENCES_NS.get(case.peer or "")
        if peer_reference is not None and "ratio_vs_prometheus_client" in entry:
            x_prom = float(entry["ratio_vs_prometheus_client"])
            target = case.target_ns / peer_reference
            line += f"; x prom {x_prom:.2f}x / {target:.2f}x {verdict(x_prom <= target)}"
            entry.update(
                target_x_prometheus=round(target, 3), x_prometheus_met=verdict(x_prom <= target)
            )
        print(line)
    print(
        "ratio targets: the ns target divided by the reference machine's dict floor (51 ns) "
        "and prometheus_client figure (1,300 ns labelled inc, 830 ns observe)."
    )
    if not runner.args.no_parts:
        stage = median(benches["ours with inst.stage(x): pass"]) * 1e9
        print(f"\nWhere the time goes (each part timed alone; the whole stage: {stage:,.0f} ns):")
        for case in PARTS:
            print(f"  {case.name:<48} {median(benches[case.name]) * 1e9:>7,.0f} ns")
    return annotations


def main() -> None:
    runner = make_runner(__doc__ or "", add_arguments, forward=["--no-parts"])
    load = Load() if is_master(runner) else None
    missing = {
        case.name: "not installed"
        for case in CASES
        if case.needs and version_of(case.needs) == "not installed"
    }
    cases = [case for case in CASES if case.name not in missing]
    if not runner.args.no_parts:
        cases += PARTS
    benches = {case.name: runner.bench_time_func(case.name, time_case, case) for case in cases}
    if load is None:
        return
    print(f"\n{load.machine([b for b in benches.values() if b is not None])}")
    annotations = report(runner, done(benches), missing)
    annotate(runner, {name: {**annotations.get(name, {}), **load.metadata()} for name in benches})
    print(f"\n{load.describe()}")
    if runner.args.cprofile:
        print("\ncProfile of 'with inst.stage(x): pass' (tottime):")
        print(profile_stage(200_000))


if __name__ == "__main__":
    main()
