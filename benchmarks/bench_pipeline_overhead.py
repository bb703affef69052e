"""What monitoring adds to one pipeline run: wall time per run and CPU at 50 runs/s.

An ``AssistantApp`` (``assistant/app.py``) is built in-process and
``await app.pipeline.handle(text, stream=False)`` answers a new conversation per
run (context, classify, generate, persist), against the stub LLM server
(``StubLLMServer(latency=0.001)``, on 127.0.0.1 in the parent process so its CPU is
not counted in the measured process). Two modes, each in its own processes
(``start_metrics`` keeps one runtime per process):

* ON: ``ENABLE_METRICS=true`` (metrics with their store, a pipeline run record per
  run in ``monitoring.db``), and ``configure_logging`` writing JSON lines to a
  temporary directory at INFO;
* OFF: ``ENABLE_METRICS=false`` and ``configure_logging(log_dir=None,
  level="CRITICAL", console_level="CRITICAL")``: no log file, no run records, no
  store. The instrumentation still records into its in-memory registry (there is
  no switch for that), so the difference is what the store, the run records and
  the log files cost.

Settings come from ``load_settings(environ={...})`` with a full environment
(``ASSISTANT_ENV_FILE=none``, a temporary ``ASSISTANT_DATA_DIR``, the stub's URL, a
key, ``ENABLE_METRICS``, ``LOG_LEVEL``).

1. Wall time per run: two pyperf benchmarks, ``pipeline.handle, monitoring OFF``
   and ``... ON`` (``Runner.bench_time_func``); for every value a pyperf worker
   opens the app on an event loop of its own, makes ``--warmup-runs`` untimed runs,
   times pyperf's loops of runs, and closes the app (untimed). Target: monitoring
   adds < 1 ms per run (median ON - median OFF).
2. CPU at ``--rate`` runs per second (hand-written: pyperf times as fast as it can):
   ``--rounds`` ON and OFF child processes, alternating (ON, OFF, then OFF, ON...),
   each runs ``--warmup-runs`` untimed runs, then its share of ``--paced-seconds``
   paced at ``--rate`` (process CPU seconds per wall second, every thread).
   Target: < 2% CPU at 50 runs/s (added process CPU-s per wall s < 0.02).
   Whole-process differences are noisy on a shared VM (one process runs 20% faster
   than the next), so the paced children also measure, inside their runs, the one
   step whose work differs between the modes: ``Pipeline._finish`` (the summary log
   line and ``app.record_run``), wrapped on the instance with the same wrapper in
   both modes, and the garbage collector's work (``gc.callbacks``); then the same
   two parts alone in a hot loop (a lower bound: warm caches). The ON children also
   time one flush of what their runs recorded, to price the 5 s periodic flush the
   README describes. Finally one ON and one OFF child run under cProfile: top 15
   package functions by cumulative time per run in ON, next to OFF.

The stub, as shipped, stalls ~40 ms on every request of a kept-alive connection
(Nagle's algorithm on its socket against the client's delayed ACK: it writes the
headers and the body in two sends). The SDK keeps its connection alive, so with the
stock stub a run takes ~48 ms instead of ~6; that is measured and printed
(``stub round trip``), then the benchmark sets ``disable_nagle_algorithm`` on the
stub's handler (``--stock-stub`` keeps it as shipped).

Run: ``.venv/bin/python benchmarks/bench_pipeline_overhead.py [--fast] [-o FILE.json]
[--rounds R] [--paced-seconds S] [--rate R] [--warmup-runs N] [--profile-runs N]
[--stock-stub]`` (and any other pyperf option). One paced child alone:
``... --mode on|off`` (prints its JSON; starts its own stub without ``--stub-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyperf
from _common import BENCH_DIR, PYTHON, package_profile, print_table
from _perf_inprocess import Load, annotate, done, is_master, make_runner, median, verdict

TARGET_ADDED_MS = 1.0
TARGET_CPU_SHARE = 0.02
API_KEY = "sk-bench-000000000000"
STUB_LATENCY = 0.001
DOCUMENTED_FLUSH_INTERVAL_S = 5.0  # MONITOR_FLUSH_INTERVAL's default
PROFILE_TOP = 15
PROMPTS = (
    "How do I retry a failed HTTP call in Python?",
    "Write a function that parses ISO dates",
    "hello there",
    "Explain what a circuit breaker does in a distributed system.",
    "my password: hunter2, is that safe?",
    "Summarize the plot of Hamlet in three sentences.",
)


# -- one mode, in this process ------------------------------------------------------


def child_environ(mode: str, data_dir: Path, stub_url: str) -> dict[str, str]:
    """The whole environment the settings are loaded from (nothing inherited)."""
    return {
        "ASSISTANT_ENV_FILE": "none",
        "ASSISTANT_DATA_DIR": str(data_dir),
        "LLM_BASE_URL": stub_url,
        "LLM_API_KEY": API_KEY,
        "ENABLE_METRICS": "true" if mode == "on" else "false",
        "LOG_LEVEL": "INFO" if mode == "on" else "CRITICAL",
    }


def count_log_lines(log_dir: Path) -> int:
    if not log_dir.is_dir():
        return 0
    return sum(
        path.read_bytes().count(b"\n") for path in log_dir.iterdir() if ".jsonl" in path.name
    )


def count_run_records(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM pipeline_runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def time_parts(app: Any, run: Any, calls: int = 300) -> dict[str, dict[str, float]]:
    """Median and mean us of the two things ON adds to a run, each called alone.

    ``RunStore.record`` (one INSERT and COMMIT into monitoring.db, on the event loop's
    thread) and ``log_pipeline_summary`` inside ``log_context`` (the run's one INFO
    line; a level check and nothing more when no sink takes INFO).
    """
    import dataclasses

    from assistant.storage import new_id
    from assistant_monitoring.logs import log_context, log_pipeline_summary

    def timed(action: Any) -> dict[str, float]:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return {
            "median_us": statistics.median(times) * 1e6,
            "mean_us": statistics.fmean(times) * 1e6,
        }

    def log() -> None:
        with log_context(
            conversation_id=run.conversation_id, message_id=run.message_id, run_id=run.id
        ):
            log_pipeline_summary(
                conversation_id=run.conversation_id,
                message_id=run.message_id,
                status=run.status,
                total_seconds=run.duration_ms / 1000,
                stage_seconds={stage.name: stage.duration_ms / 1000 for stage in run.stages},
            )

    parts = {"log_pipeline_summary in log_context": timed(log)}
    if app.runs is not None:
        parts["RunStore.record"] = timed(
            lambda: app.record_run(dataclasses.replace(run, id=new_id("run")))
        )
    return parts


class InSitu:
    """Inside the timed runs: what ``Pipeline._finish`` costs, and the garbage collector.

    ``_finish`` (the summary log line and ``record_run``) is the only step of a run
    whose work differs between ON and OFF; it is timed by wrapping it on the
    pipeline instance (the same wrapper in both modes). The collector is watched
    through ``gc.callbacks``: ON allocates more per run, so it may also collect more.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.pipeline = app.pipeline
        self.record_us: list[float] = []
        self.finish_us: list[float] = []
        self.finish_cpu_us: list[float] = []
        self.gc_count = [0, 0, 0]
        self.gc_seconds = [0.0, 0.0, 0.0]
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        generation = info["generation"]
        self.gc_count[generation] += 1
        self.gc_seconds[generation] += time.perf_counter() - self._gc_start

    def __enter__(self) -> InSitu:
        import gc

        original = self.pipeline._finish

        def timed_finish(run: Any, clock: float) -> None:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            original(run, clock)
            self.finish_us.append((time.perf_counter() - wall0) * 1e6)
            self.finish_cpu_us.append((time.process_time() - cpu0) * 1e6)

        original_record = self.app.record_run

        def timed_record(run: Any) -> None:
            wall0 = time.perf_counter()
            original_record(run)
            self.record_us.append((time.perf_counter() - wall0) * 1e6)

        self.pipeline._finish = timed_finish
        self.app.record_run = timed_record
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._on_gc)
        del self.pipeline._finish  # the class's methods again
        del self.app.record_run

    def summary(self, runs: int) -> dict[str, Any]:
        return {
            "finish_median_us": statistics.median(self.finish_us),
            "finish_mean_us": statistics.fmean(self.finish_us),
            "finish_cpu_mean_us": statistics.fmean(self.finish_cpu_us),
            "record_run_median_us": statistics.median(self.record_us),
            "record_run_mean_us": statistics.fmean(self.record_us),
            "gc_per_100_runs": [count * 100 / runs for count in self.gc_count],
            "gc_ms_per_run": sum(self.gc_seconds) * 1000 / runs,
        }


class ModeApp:
    """One mode's ``AssistantApp`` in this process, on an event loop of its own."""

    def __init__(self, mode: str, stub_url: str) -> None:
        from assistant.app import AssistantApp
        from assistant_monitoring import __version__
        from assistant_monitoring.logs import configure_logging
        from assistant_monitoring.settings import load_settings

        self.mode = mode
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{mode}-"))
        environ = child_environ(mode, self.tmp / "data", stub_url)
        self.settings = load_settings(environ=environ).settings
        if self.settings.features.metrics != (mode == "on"):
            raise RuntimeError("ENABLE_METRICS was not applied")
        self.log_dir = self.tmp / "logs"
        self._devnull = open(os.devnull, "w")  # noqa: SIM115 (closed in close())
        self._logging = configure_logging(
            log_dir=self.log_dir if mode == "on" else None,
            level="INFO" if mode == "on" else "CRITICAL",
            console_level="WARNING" if mode == "on" else "CRITICAL",
            environment=self.settings.profile,
            version=__version__,
            max_bytes=self.settings.logging.max_bytes,
            max_files=self.settings.logging.max_files,
            color=False,
            stream=self._devnull,
        )
        self.loop = asyncio.new_event_loop()
        self.app = self.loop.run_until_complete(AssistantApp.open(self.settings))
        self.app.llm.prepare()  # the SDK import, outside any timing
        self.count = 0
        self.runs: list[Any] = []

    async def one(self) -> None:
        answer = await self.app.pipeline.handle(PROMPTS[self.count % len(PROMPTS)], stream=False)
        self.count += 1
        if answer.run.status != "success" or not answer.text:
            raise RuntimeError(f"run failed: {answer.run}")
        self.runs.append(answer.run)

    async def many(self, runs: int) -> float:
        """``runs`` runs one after the other; their wall time in seconds."""
        started = time.perf_counter()
        for _ in range(runs):
            await self.one()
        return time.perf_counter() - started

    def written(self) -> dict[str, int]:
        return {
            "log_lines": count_log_lines(self.log_dir),
            "run_records": count_run_records(self.settings.monitoring_db_path),
        }

    def close(self) -> None:
        from assistant_monitoring.metrics.runtime import stop_metrics

        try:
            self.loop.run_until_complete(self.app.close())
            self.loop.close()
        finally:
            # The runtime flushes at exit: do it now, while the directory exists
            # (a later flush would create data/monitoring.db again).
            stop_metrics()
            self._logging.close()
            self._devnull.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- 1. wall time per run, in pyperf's workers ---------------------------------------


def time_runs(loops: int, mode: str, runner: pyperf.Runner) -> float:
    """pyperf's time function: ``loops`` runs of an app opened and warmed for them.

    The app is opened and closed around every value (untimed): closed at the
    worker's exit instead, its non-daemon threads would keep the worker from exiting
    (Python joins them before it runs ``atexit``).
    """
    m = ModeApp(mode, runner.args.stub_url)
    try:
        m.loop.run_until_complete(m.many(runner.args.warmup_runs))
        return m.loop.run_until_complete(m.many(loops))
    finally:
        m.close()


# -- 2. paced CPU, in situ, parts, flush, profile: hand-written children ---------------


async def exercise(
    m: ModeApp, *, warmup: int, paced_seconds: float, rate: float, profile: int
) -> dict[str, Any]:
    """Warm up, then run paced at ``rate`` for ``paced_seconds`` (or profile runs)."""
    for _ in range(warmup):
        await m.one()
    result: dict[str, Any] = {}
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(profile):
            await m.one()
        profiler.disable()
        result["profile"] = package_profile(pstats.Stats(profiler))
        result["profile_runs"] = profile
        return result

    interval = 1 / rate
    late = done_runs = 0
    first = len(m.runs)
    with InSitu(m.app) as in_situ:
        cpu0, start = time.process_time(), time.perf_counter()
        due = start
        end = start + paced_seconds
        while due < end:
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > interval:  # a run overran: skip the missed slots, no burst
                late += 1
                due = now
            await m.one()
            done_runs += 1
            due += interval
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    result["paced"] = {"runs": done_runs, "late": late, "wall_s": wall, "cpu_s": cpu}
    result["paced_in_situ"] = in_situ.summary(done_runs)
    stages: dict[str, list[float]] = {"run (RunRecord.duration_ms)": []}
    for run in m.runs[first:]:
        stages["run (RunRecord.duration_ms)"].append(run.duration_ms)
        for stage in run.stages:
            stages.setdefault(stage.name, []).append(stage.duration_ms)
    result["stages_median_ms"] = {name: statistics.median(v) for name, v in stages.items()}
    result["total_runs"] = m.count
    result.update(m.written())  # before time_parts adds lines and records of its own
    result["parts_us"] = time_parts(m.app, m.runs[-1])
    runtime = m.app.runtime
    if runtime.store is not None:
        # What the periodic flush would write: everything recorded since start-up.
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runtime.flush()
        result["flush"] = {
            "wall_ms": (time.perf_counter() - wall0) * 1000,
            "cpu_ms": (time.process_time() - cpu0) * 1000,
            "runs_recorded": m.count,
        }
    return result


def run_mode(args: argparse.Namespace, stub_url: str) -> dict[str, Any]:
    m = ModeApp(args.mode, stub_url)
    try:
        result = m.loop.run_until_complete(
            exercise(
                m,
                warmup=args.warmup_runs,
                paced_seconds=args.paced_seconds,
                rate=args.rate,
                profile=args.profile_child,
            )
        )
    finally:
        m.close()
    result["mode"] = args.mode
    return result


def child_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="one paced child (prints JSON)")
    parser.add_argument("--mode", choices=("on", "off"), required=True)
    parser.add_argument("--warmup-runs", type=int, default=20)
    parser.add_argument("--paced-seconds", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--profile-child", type=int, default=0, help="profile N runs instead")
    parser.add_argument("--stock-stub", action="store_true")
    parser.add_argument("--stub-url")
    return parser


def child_main(args: argparse.Namespace) -> None:
    if args.stub_url:
        result = run_mode(args, args.stub_url)
    else:
        stub = start_stub(stock=args.stock_stub)
        try:
            result = run_mode(args, stub.url)
        finally:
            stub.stop()
    print(json.dumps(result))


# -- the stub --------------------------------------------------------------------------


def start_stub(*, stock: bool) -> Any:
    import assistant.stubllm.server as stub_server
    from assistant.stubllm import StubLLMServer

    stub_server._Handler.disable_nagle_algorithm = not stock
    return StubLLMServer(host="127.0.0.1", latency=STUB_LATENCY).start()


def stub_round_trip_ms(*, stock: bool, requests: int = 20) -> float:
    """Median round trip of a non-streamed POST /v1/messages on a kept-alive connection."""
    import http.client

    stub = start_stub(stock=stock)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
        body = json.dumps(
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "hello"}],
            }
        )
        headers = {
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        }
        times = []
        try:
            for _ in range(requests):
                start = time.perf_counter()
                conn.request("POST", "/v1/messages", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"stub answered {response.status}")
                times.append(time.perf_counter() - start)
        finally:
            conn.close()
        return statistics.median(times) * 1000
    finally:
        stub.stop()


# -- the parent ------------------------------------------------------------------------


def spawn(
    mode: str, stub_url: str, *, warmup: int, paced: float, rate: float, profile: int
) -> dict[str, Any]:
    argv = [
        str(PYTHON),
        str(BENCH_DIR / "bench_pipeline_overhead.py"),
        *("--mode", mode, "--stub-url", stub_url, "--warmup-runs", str(warmup)),
        *("--paced-seconds", str(paced), "--rate", str(rate), "--profile-child", str(profile)),
    ]
    done_ = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if done_.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done_.returncode}): {done_.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done_.stdout.strip().splitlines()[-1])
    return result


def summarize_mode(children: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    paced_runs = sum(child["paced"]["runs"] for child in children)
    paced_wall = sum(child["paced"]["wall_s"] for child in children)
    paced_cpu = sum(child["paced"]["cpu_s"] for child in children)
    summary: dict[str, Any] = {
        "paced_runs": paced_runs,
        "paced_late": sum(child["paced"]["late"] for child in children),
        "paced_wall_s": paced_wall,
        "paced_rate": paced_runs / paced_wall,
        "paced_cpu_per_s": paced_cpu / paced_wall,
        "paced_cpu_per_run_ms": paced_cpu / paced_runs * 1000,
        "log_lines_per_run": statistics.fmean(
            child["log_lines"] / child["total_runs"] for child in children
        ),
        "run_records_per_run": statistics.fmean(
            child["run_records"] / child["total_runs"] for child in children
        ),
    }
    summary["stages_median_ms"] = {
        name: statistics.median(child["stages_median_ms"][name] for child in children)
        for name in children[0]["stages_median_ms"]
    }
    in_situ = [child["paced_in_situ"] for child in children]
    summary["paced_in_situ"] = {
        name: statistics.median(c[name] for c in in_situ)
        for name in in_situ[0]
        if name.startswith(("finish", "record_run"))
    }
    summary["paced_in_situ"]["gc_per_100_runs"] = [
        statistics.fmean(c["gc_per_100_runs"][g] for c in in_situ) for g in range(3)
    ]
    summary["paced_in_situ"]["gc_ms_per_run"] = statistics.fmean(
        c["gc_ms_per_run"] for c in in_situ
    )
    summary["parts_us"] = {
        name: {
            stat: statistics.median(child["parts_us"][name][stat] for child in children)
            for stat in ("median_us", "mean_us")
        }
        for name in children[0]["parts_us"]
    }
    flushes = [child["flush"] for child in children if "flush" in child]
    if flushes:
        summary["flush_wall_ms"] = statistics.median(f["wall_ms"] for f in flushes)
        summary["flush_cpu_ms"] = statistics.median(f["cpu_ms"] for f in flushes)
    return summary


def round_stats(child: Mapping[str, Any]) -> dict[str, float]:
    """One child's figures, for differences between the ON and OFF child of a round."""
    paced = child["paced"]
    return {
        "paced_cpu_per_s": paced["cpu_s"] / paced["wall_s"],
        "paced_cpu_per_run_ms": paced["cpu_s"] / paced["runs"] * 1000,
    }


def paired_differences(
    on: Sequence[Mapping[str, Any]], off: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, float]]:
    """ON - OFF within each round (children run back to back): median, min and max."""
    diffs: dict[str, list[float]] = {}
    for on_child, off_child in zip(on, off, strict=True):
        a, b = round_stats(on_child), round_stats(off_child)
        for key in a:
            diffs.setdefault(key, []).append(a[key] - b[key])
    return {
        key: {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for key, values in diffs.items()
    }


def compare_profiles(on: Mapping[str, Any], off: Mapping[str, Any]) -> list[dict[str, Any]]:
    per_on, per_off = on["profile_runs"], off["profile_runs"]
    rows = []
    for name, values in on["profile"].items():
        other = off["profile"].get(name)
        rows.append(
            {
                "function": name,
                "calls_per_run": values["calls"] / per_on,
                "on_cum_ms": values["cumtime_s"] * 1000 / per_on,
                "on_own_ms": values["tottime_s"] * 1000 / per_on,
                "off_cum_ms": other["cumtime_s"] * 1000 / per_off if other else 0.0,
            }
        )
    rows.sort(key=lambda row: row["on_cum_ms"], reverse=True)
    return rows


NAMES = {"off": "pipeline.handle, monitoring OFF", "on": "pipeline.handle, monitoring ON"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=10, help="paced ON and OFF children each")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="per mode, in all")
    parser.add_argument("--rate", type=float, default=50.0, help="paced runs per second")
    parser.add_argument(
        "--warmup-runs", type=int, default=20, help="untimed runs per worker and child first"
    )
    parser.add_argument("--profile-runs", type=int, default=200, help="runs under cProfile")
    parser.add_argument("--stock-stub", action="store_true", help="keep the stub as shipped")
    parser.add_argument("--stub-url", help=argparse.SUPPRESS)


def main() -> None:
    if "--mode" in sys.argv[1:]:  # one paced child
        child_main(child_parser().parse_args())
        return
    runner = make_runner(__doc__ or "", add_arguments, forward=["--stub-url", "--warmup-runs"])
    args = runner.args
    if not is_master(runner):
        for mode, name in NAMES.items():
            runner.bench_time_func(name, time_runs, mode, runner)
        return

    load = Load()
    stock_rt = stub_round_trip_ms(stock=True)
    fixed_rt = stub_round_trip_ms(stock=False)
    per_child_paced = args.paced_seconds / args.rounds
    children: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    stub = start_stub(stock=args.stock_stub)
    args.stub_url = stub.url
    try:
        benches = done(
            {
                name: runner.bench_time_func(name, time_runs, mode, runner)
                for mode, name in NAMES.items()
            }
        )
        for round_ in range(args.rounds):
            for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                children[mode].append(
                    spawn(
                        mode,
                        stub.url,
                        warmup=args.warmup_runs,
                        paced=per_child_paced,
                        rate=args.rate,
                        profile=0,
                    )
                )
        profiles = {
            mode: spawn(
                mode,
                stub.url,
                warmup=args.warmup_runs,
                paced=0,
                rate=args.rate,
                profile=args.profile_runs,
            )
            for mode in ("on", "off")
        }
        stub_requests = len(stub.requests)
    finally:
        stub.stop()

    off_s, on_s = median(benches[NAMES["off"]]), median(benches[NAMES["on"]])
    added_ms = (on_s - off_s) * 1000
    on, off = summarize_mode(children["on"]), summarize_mode(children["off"])
    paired = paired_differences(children["on"], children["off"])
    added_cpu_share = on["paced_cpu_per_s"] - off["paced_cpu_per_s"]
    parts_on, parts_off = on["parts_us"], off["parts_us"]
    log_part = "log_pipeline_summary in log_context"
    bottom_up_us = {
        stat: parts_on["RunStore.record"][stat]
        + parts_on[log_part][stat]
        - parts_off[log_part][stat]
        for stat in ("median_us", "mean_us")
    }
    situ_on, situ_off = on["paced_in_situ"], off["paced_in_situ"]
    in_situ_wall_ms = (situ_on["finish_mean_us"] - situ_off["finish_mean_us"]) / 1000
    paced_added_us = situ_on["finish_cpu_mean_us"] - situ_off["finish_cpu_mean_us"]
    in_situ_share = paced_added_us / 1e6 * args.rate
    flush_cpu_share = on.get("flush_cpu_ms", 0.0) / 1000 / DOCUMENTED_FLUSH_INTERVAL_S
    profile_rows = compare_profiles(profiles["on"], profiles["off"])

    print(f"\n{load.machine(list(benches.values()))}")
    print(
        f"stub round trip (POST /v1/messages, kept-alive connection, median of 20): "
        f"{stock_rt:.1f} ms as shipped, {fixed_rt:.1f} ms with TCP_NODELAY; this run uses "
        + ("the stub as shipped" if args.stock_stub else "TCP_NODELAY")
        + f" (latency {STUB_LATENCY * 1000:g} ms); it answered {stub_requests:,} requests"
    )
    print(
        f"\n1. wall time per run (pyperf, {args.warmup_runs} untimed runs per worker first): "
        f"OFF {off_s * 1000:.3f} ms, ON {on_s * 1000:.3f} ms (medians): ON adds "
        f"{added_ms:+.3f} ms, {on_s / off_s:.3f}x OFF"
    )
    print(
        f"\n2. paced at {args.rate:g} runs/s: {args.rounds} rounds of ON and OFF children, "
        f"alternating; each: {args.warmup_runs} warm-up runs, then {per_child_paced:.1f} s paced"
    )

    def row(label: str, key: str, digits: int = 3) -> list[str]:
        pair = paired.get(key)
        return [
            label,
            f"{on[key]:.{digits}f}",
            f"{off[key]:.{digits}f}",
            f"{on[key] - off[key]:+.{digits}f}",
            (
                "{:+.{d}f} [{:+.{d}f}, {:+.{d}f}]".format(
                    pair["median"], pair["min"], pair["max"], d=digits
                )
                if pair
                else ""
            ),
        ]

    print_table(
        ["paced", "ON", "OFF", "ON - OFF", "ON - OFF by round: median [min, max]"],
        [
            ["runs", on["paced_runs"], off["paced_runs"], "", ""],
            ["runs started late", on["paced_late"], off["paced_late"], "", ""],
            ["achieved runs/s", f"{on['paced_rate']:.1f}", f"{off['paced_rate']:.1f}", "", ""],
            row("process CPU-s per wall s", "paced_cpu_per_s", 4),
            row("process CPU ms per run", "paced_cpu_per_run_ms"),
            [
                "log lines written per run",
                f"{on['log_lines_per_run']:.2f}",
                f"{off['log_lines_per_run']:.2f}",
                "",
                "",
            ],
            [
                "run records per run",
                f"{on['run_records_per_run']:.2f}",
                f"{off['run_records_per_run']:.2f}",
                "",
                "",
            ],
        ],
    )
    print("\nwhere the added cost goes, inside the paced runs (the median over children; gc: mean)")

    def situ(key: str, digits: int = 1) -> list[str]:
        a, b = situ_on[key], situ_off[key]
        return [f"{a:.{digits}f}", f"{b:.{digits}f}", f"{a - b:+.{digits}f}"]

    print_table(
        ["in situ", "ON", "OFF", "ON - OFF"],
        [
            [f"Pipeline._finish {label} us", *situ(key)]
            for label, key in (
                ("median wall", "finish_median_us"),
                ("mean wall", "finish_mean_us"),
                ("mean CPU", "finish_cpu_mean_us"),
                ("> app.record_run median wall", "record_run_median_us"),
                ("> app.record_run mean wall", "record_run_mean_us"),
            )
        ]
        + [
            [
                "gc collections per 100 runs (gen 0/1/2)",
                *("/".join(f"{v:.1f}" for v in s["gc_per_100_runs"]) for s in (situ_on, situ_off)),
                "",
            ],
            ["gc ms per run", *situ("gc_ms_per_run", 3)],
        ],
    )
    print("\nthe stages of the paced runs, as the run records time them (median over children)")
    print_table(
        ["stage", "ON ms", "OFF ms", "ON - OFF"],
        [
            [
                name,
                f"{value:.3f}",
                f"{off['stages_median_ms'][name]:.3f}",
                f"{value - off['stages_median_ms'][name]:+.3f}",
            ]
            for name, value in on["stages_median_ms"].items()
        ],
    )
    print(
        f"in situ, ON adds {in_situ_wall_ms * 1000:.0f} us per run (mean wall) and "
        f"{paced_added_us:.0f} us of CPU per run at {args.rate:g} runs/s: "
        f"{in_situ_share:.4f} CPU-s per s"
    )
    print("\nthe same parts called alone, 300 times in a hot loop in every child (us per call)")
    print_table(
        ["part", "ON median", "ON mean", "OFF median", "OFF mean"],
        [
            [
                name,
                f"{value['median_us']:.1f}",
                f"{value['mean_us']:.1f}",
                f"{parts_off[name]['median_us']:.1f}" if name in parts_off else "-",
                f"{parts_off[name]['mean_us']:.1f}" if name in parts_off else "-",
            ]
            for name, value in parts_on.items()
        ],
    )
    print(
        f"hot loop: ON adds {bottom_up_us['median_us']:.0f} us per run (median; mean "
        f"{bottom_up_us['mean_us']:.0f} us), {bottom_up_us['mean_us'] / 1e6 * args.rate:.4f} "
        f"CPU-s per s at {args.rate:g} runs/s (caches warm: a lower bound)"
    )
    if "flush_cpu_ms" in on:
        print(
            f"\none flush of an ON child's metrics ({args.warmup_runs} warm-up and "
            f"~{per_child_paced * args.rate:.0f} paced runs): {on['flush_wall_ms']:.1f} ms wall, "
            f"{on['flush_cpu_ms']:.1f} ms CPU; every {DOCUMENTED_FLUSH_INTERVAL_S:g} s "
            f"(MONITOR_FLUSH_INTERVAL, documented but not started by AssistantApp) that would "
            f"add {flush_cpu_share:.4f} CPU-s per s"
        )
    print(
        f"\nwhere ON's time goes: cProfile over {args.profile_runs} runs in one ON and one OFF "
        "child (main thread only; per run; top by ON cumulative time; coroutines are counted "
        "once per resume)"
    )
    print_table(
        ["assistant/assistant_monitoring function", "calls", "ON cum ms", "ON own ms", "OFF cum"],
        [
            [
                row["function"],
                f"{row['calls_per_run']:.1f}",
                f"{row['on_cum_ms']:.3f}",
                f"{row['on_own_ms']:.3f}",
                f"{row['off_cum_ms']:.3f}",
            ]
            for row in profile_rows[:PROFILE_TOP]
        ],
    )
    wall_met = added_ms < TARGET_ADDED_MS
    cpu_met = added_cpu_share < TARGET_CPU_SHARE
    print(
        f"\ntargets: added wall per run (pyperf, median ON - median OFF) < {TARGET_ADDED_MS:g} ms: "
        f"{verdict(wall_met)} ({added_ms:+.3f} ms); added CPU at {args.rate:g} runs/s "
        f"(paced children, pooled) < {TARGET_CPU_SHARE:g} CPU-s/s: {verdict(cpu_met)} "
        f"({added_cpu_share:+.4f})"
    )
    print(
        f"targets, in situ (Pipeline._finish, the one step that differs; far less noisy): "
        f"added wall {verdict(in_situ_wall_ms < TARGET_ADDED_MS)} ({in_situ_wall_ms:+.3f} ms "
        f"mean); added CPU {verdict(in_situ_share < TARGET_CPU_SHARE)} "
        f"({in_situ_share:+.4f} CPU-s/s"
        + (
            f", {in_situ_share + flush_cpu_share:+.4f} with the documented periodic flush)"
            if "flush_cpu_ms" in on
            else ")"
        )
    )
    print(load.describe())
    derived: dict[str, str | float] = {
        "added_ms": round(added_ms, 4),
        "ratio_vs_off": round(on_s / off_s, 4),
        "target_added_ms": TARGET_ADDED_MS,
        "target_added_ms_met": verdict(wall_met),
        "paced_added_cpu_per_s": round(added_cpu_share, 5),
        "target_cpu_per_s": TARGET_CPU_SHARE,
        "target_cpu_met": verdict(cpu_met),
        "in_situ_added_ms": round(in_situ_wall_ms, 4),
        "in_situ_cpu_per_s": round(in_situ_share, 5),
    }
    annotate(
        runner,
        {
            NAMES["off"]: load.metadata(),
            NAMES["on"]: {**derived, **load.metadata()},
        },
    )


if __name__ == "__main__":
    main()
