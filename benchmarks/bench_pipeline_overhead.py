"""What monitoring adds to one pipeline run: wall time per run and CPU at 50 runs/s.

An ``AssistantApp`` (``assistant/app.py``) is built in-process and
``await app.pipeline.handle(text, stream=False)`` answers a new conversation per
run (context, classify, generate, persist), against the stub LLM server
(``StubLLMServer(latency=0.001)``, on 127.0.0.1 in the parent process so its CPU is
not counted in the measured process). Two modes, each in its own child process
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
key, ``ENABLE_METRICS``, ``LOG_LEVEL``). ON and OFF children alternate (ON, OFF,
then OFF, ON...), ``--rounds`` of each, to spread drift; each child runs
``--warmup`` untimed runs, then its share of ``--runs`` timed runs (wall time with
``perf_counter``, CPU with ``process_time``: every thread of the process, so the
classifier and aiosqlite threads count), then its share of ``--paced-seconds`` at
``--rate`` runs per second (process CPU seconds per wall second).

Whole-run differences between processes are noisy on a shared VM (one process
runs 20% faster than the next), so the children also measure, inside the timed
runs, the one step whose work differs between the modes: ``Pipeline._finish`` (the
summary log line and ``app.record_run``), wrapped on the instance with the same
wrapper in both modes, and the garbage collector's work (``gc.callbacks``). Then
the same two parts are timed alone in a hot loop (a lower bound: warm caches). The
ON children also time one flush of what their runs recorded, to price the 5 s
periodic flush the README describes. Finally one ON and one OFF child run under
cProfile: top 15 package functions (``assistant``, ``assistant_monitoring``) by
cumulative time per run in ON, next to the same function in OFF.

The stub, as shipped, stalls ~40 ms on every request of a kept-alive connection
(Nagle's algorithm on its socket against the client's delayed ACK: it writes the
headers and the body in two sends). The SDK keeps its connection alive, so with the
stock stub a run takes ~48 ms instead of ~6; that is measured and printed
(``stub round trip``), then the benchmark sets ``disable_nagle_algorithm`` on the
stub's handler (``--stock-stub`` keeps it as shipped).

Targets: monitoring adds < 1 ms per run (median ON - OFF), and < 2% CPU at 50
runs/s (added process CPU seconds per wall second < 0.02).

Run: ``.venv/bin/python benchmarks/bench_pipeline_overhead.py [--runs N] [--rounds R]
[--paced-seconds S] [--json] [--stock-stub]``. About 1.5 minutes (10 rounds). One mode alone:
``... --mode on --json`` (starts its own stub without ``--stub-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    PYTHON,
    LoadWatch,
    dump_json,
    machine_info,
    package_profile,
    print_machine,
    print_table,
    verdict,
)

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


async def exercise(
    app: Any,
    *,
    runs: int,
    warmup: int,
    paced_seconds: float,
    rate: float,
    profile: bool,
    written: Callable[[], dict[str, int]],
) -> dict[str, Any]:
    """Warm up, time ``runs`` runs, then run paced at ``rate`` for ``paced_seconds``."""
    handle = app.pipeline.handle
    count = 0

    last_run: Any = None

    async def one() -> None:
        nonlocal count, last_run
        answer = await handle(PROMPTS[count % len(PROMPTS)], stream=False)
        count += 1
        if answer.run.status != "success" or not answer.text:
            raise RuntimeError(f"run failed: {answer.run}")
        last_run = answer.run
        runs_seen.append(answer.run)

    runs_seen: list[Any] = []
    for _ in range(warmup):
        await one()
    result: dict[str, Any] = {}
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            await one()
        profiler.disable()
        result["profile"] = package_profile(pstats.Stats(profiler))
        result["profile_runs"] = runs
        return result

    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    with InSitu(app) as in_situ:
        for _ in range(runs):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await one()
            wall_ms.append((time.perf_counter() - wall0) * 1000)
            cpu_ms.append((time.process_time() - cpu0) * 1000)
    result["wall_ms"] = wall_ms
    result["cpu_ms"] = cpu_ms
    result["in_situ"] = in_situ.summary(runs)
    timed_runs = runs_seen[-runs:]
    stages: dict[str, list[float]] = {"run (RunRecord.duration_ms)": []}
    for run in timed_runs:
        stages["run (RunRecord.duration_ms)"].append(run.duration_ms)
        for stage in run.stages:
            stages.setdefault(stage.name, []).append(stage.duration_ms)
    result["stages_median_ms"] = {name: statistics.median(v) for name, v in stages.items()}

    if paced_seconds > 0:
        interval = 1 / rate
        late = 0
        done = 0
        with InSitu(app) as paced_in_situ:
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
                await one()
                done += 1
                due += interval
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu0
        result["paced"] = {"runs": done, "late": late, "wall_s": wall, "cpu_s": cpu}
        result["paced_in_situ"] = paced_in_situ.summary(done)

    result["total_runs"] = count
    result.update(written())  # before time_parts adds lines and records of its own
    result["parts_us"] = time_parts(app, last_run)

    runtime = app.runtime
    if runtime.store is not None:
        # What the periodic flush would write: everything recorded since start-up.
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runtime.flush()
        result["flush"] = {
            "wall_ms": (time.perf_counter() - wall0) * 1000,
            "cpu_ms": (time.process_time() - cpu0) * 1000,
            "runs_recorded": count,
        }
    return result


def run_mode(args: argparse.Namespace, stub_url: str) -> dict[str, Any]:
    from assistant.app import AssistantApp
    from assistant_monitoring import __version__
    from assistant_monitoring.logs import configure_logging
    from assistant_monitoring.metrics.runtime import stop_metrics
    from assistant_monitoring.settings import load_settings

    with tempfile.TemporaryDirectory(prefix=f"bench-pipeline-{args.mode}-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = load_settings(environ=child_environ(args.mode, data_dir, stub_url)).settings
        if settings.features.metrics != (args.mode == "on"):
            raise RuntimeError("ENABLE_METRICS was not applied")
        log_dir = Path(tmp) / "logs"
        with open(os.devnull, "w") as devnull:
            handle = configure_logging(
                log_dir=log_dir if args.mode == "on" else None,
                level="INFO" if args.mode == "on" else "CRITICAL",
                console_level="WARNING" if args.mode == "on" else "CRITICAL",
                environment=settings.profile,
                version=__version__,
                max_bytes=settings.logging.max_bytes,
                max_files=settings.logging.max_files,
                color=False,
                stream=devnull,
            )
            try:

                async def main() -> dict[str, Any]:
                    app = await AssistantApp.open(settings)
                    try:
                        app.prepare_provider()  # the SDK import, outside any timing
                        return await exercise(
                            app,
                            runs=args.runs,
                            warmup=args.warmup,
                            paced_seconds=args.paced_seconds,
                            rate=args.rate,
                            profile=args.profile,
                            written=lambda: {
                                "log_lines": count_log_lines(log_dir),
                                "run_records": count_run_records(settings.monitoring_db_path),
                            },
                        )
                    finally:
                        await app.close()

                result = asyncio.run(main())
            finally:
                # The runtime flushes at exit: do it now, while the directory exists
                # (a later flush would create data/monitoring.db again).
                stop_metrics()
                handle.close()
        result["mode"] = args.mode
        return result


def child_main(args: argparse.Namespace) -> None:
    if args.stub_url:
        result = run_mode(args, args.stub_url)
    else:
        stub = start_stub(stock=args.stock_stub)
        try:
            result = run_mode(args, stub.url)
        finally:
            stub.stop()
    if args.json:
        print(json.dumps(result))
        return
    if "wall_ms" in result:
        print(
            f"{args.mode}: median {statistics.median(result['wall_ms']):.3f} ms/run, "
            f"mean {statistics.fmean(result['wall_ms']):.3f} ms/run over {args.runs} runs"
        )
    if "paced" in result:
        paced = result["paced"]
        print(f"paced: {paced['cpu_s'] / paced['wall_s']:.4f} CPU-s per s, {paced['runs']} runs")


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
    mode: str, stub_url: str, *, runs: int, warmup: int, paced: float, rate: float, profile: bool
) -> dict[str, Any]:
    argv = [
        str(PYTHON),
        str(BENCH_DIR / "bench_pipeline_overhead.py"),
        *("--mode", mode, "--json", "--stub-url", stub_url),
        *("--runs", str(runs), "--warmup", str(warmup)),
        *("--paced-seconds", str(paced), "--rate", str(rate)),
    ]
    if profile:
        argv.append("--profile")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}): {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarize_mode(children: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    wall = [v for child in children for v in child["wall_ms"]]
    cpu = [v for child in children for v in child["cpu_ms"]]
    paced_runs = sum(child["paced"]["runs"] for child in children)
    paced_wall = sum(child["paced"]["wall_s"] for child in children)
    paced_cpu = sum(child["paced"]["cpu_s"] for child in children)
    summary: dict[str, Any] = {
        "runs": len(wall),
        "median_ms": statistics.median(wall),
        "mean_ms": statistics.fmean(wall),
        "p90_ms": statistics.quantiles(wall, n=10)[-1],
        "cpu_median_ms": statistics.median(cpu),
        "cpu_mean_ms": statistics.fmean(cpu),
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
    for key in ("in_situ", "paced_in_situ"):
        in_situ = [child[key] for child in children]
        summary[key] = {
            name: statistics.median(c[name] for c in in_situ)
            for name in in_situ[0]
            if name.startswith(("finish", "record_run"))
        }
        summary[key]["gc_per_100_runs"] = [
            statistics.fmean(c["gc_per_100_runs"][g] for c in in_situ) for g in range(3)
        ]
        summary[key]["gc_ms_per_run"] = statistics.fmean(c["gc_ms_per_run"] for c in in_situ)
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
        "median_ms": statistics.median(child["wall_ms"]),
        "mean_ms": statistics.fmean(child["wall_ms"]),
        "cpu_median_ms": statistics.median(child["cpu_ms"]),
        "cpu_mean_ms": statistics.fmean(child["cpu_ms"]),
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


def parent_main(args: argparse.Namespace) -> None:
    watch = LoadWatch()
    stock_rt = stub_round_trip_ms(stock=True)
    fixed_rt = stub_round_trip_ms(stock=False)
    per_child_runs = max(1, args.runs // args.rounds)
    per_child_paced = args.paced_seconds / args.rounds
    children: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    stub = start_stub(stock=args.stock_stub)
    try:
        for round_ in range(args.rounds):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for mode in order:
                children[mode].append(
                    spawn(
                        mode,
                        stub.url,
                        runs=per_child_runs,
                        warmup=args.warmup,
                        paced=per_child_paced,
                        rate=args.rate,
                        profile=False,
                    )
                )
        profiles = {
            mode: spawn(
                mode,
                stub.url,
                runs=args.profile_runs,
                warmup=args.warmup,
                paced=0,
                rate=args.rate,
                profile=True,
            )
            for mode in ("on", "off")
        }
        stub_requests = len(stub.requests)
    finally:
        stub.stop()

    on, off = summarize_mode(children["on"]), summarize_mode(children["off"])
    paired = paired_differences(children["on"], children["off"])
    added_median = on["median_ms"] - off["median_ms"]
    added_mean = on["mean_ms"] - off["mean_ms"]
    added_cpu_share = on["paced_cpu_per_s"] - off["paced_cpu_per_s"]
    parts_on, parts_off = on["parts_us"], off["parts_us"]
    log_part = "log_pipeline_summary in log_context"
    bottom_up_us = {
        stat: parts_on["RunStore.record"][stat]
        + parts_on[log_part][stat]
        - parts_off[log_part][stat]
        for stat in ("median_us", "mean_us")
    }
    in_situ_wall_ms = (on["in_situ"]["finish_mean_us"] - off["in_situ"]["finish_mean_us"]) / 1000
    paced_added_us = (
        on["paced_in_situ"]["finish_cpu_mean_us"] - off["paced_in_situ"]["finish_cpu_mean_us"]
    )
    in_situ_share = paced_added_us / 1e6 * args.rate
    flush_cpu_share = on.get("flush_cpu_ms", 0.0) / 1000 / DOCUMENTED_FLUSH_INTERVAL_S
    profile_rows = compare_profiles(profiles["on"], profiles["off"])
    info = machine_info()
    document = {
        "benchmark": "pipeline_overhead",
        "machine": info,
        "load": watch.report(),
        "settings": {
            "runs": args.runs,
            "rounds": args.rounds,
            "warmup_per_child": args.warmup,
            "paced_seconds": args.paced_seconds,
            "rate": args.rate,
            "stub_latency_s": STUB_LATENCY,
            "stub": "as shipped" if args.stock_stub else "TCP_NODELAY set on the stub's handler",
        },
        "stub_round_trip_ms": {"as_shipped": stock_rt, "tcp_nodelay": fixed_rt},
        "stub_requests": stub_requests,
        "on": on,
        "off": off,
        "added_median_ms": added_median,
        "added_mean_ms": added_mean,
        "added_cpu_per_s": added_cpu_share,
        "paired_round_differences": paired,
        "in_situ_added_wall_ms": in_situ_wall_ms,
        "in_situ_paced_added_cpu_us": paced_added_us,
        "in_situ_cpu_per_s": in_situ_share,
        "bottom_up_added_us": bottom_up_us,
        "bottom_up_cpu_per_s": bottom_up_us["mean_us"] / 1e6 * args.rate,
        "documented_flush_cpu_per_s": flush_cpu_share,
        "targets": {
            "added_ms": TARGET_ADDED_MS,
            "added_ms_met": added_median < TARGET_ADDED_MS,
            "cpu_share": TARGET_CPU_SHARE,
            "cpu_share_met": added_cpu_share < TARGET_CPU_SHARE,
            "in_situ_added_ms_met": in_situ_wall_ms < TARGET_ADDED_MS,
            "in_situ_cpu_share_met": in_situ_share < TARGET_CPU_SHARE,
        },
        "profile_runs": args.profile_runs,
        "profile_top": profile_rows[:PROFILE_TOP],
    }
    if args.json:
        dump_json(document)
        return

    print_machine(info)
    print(
        f"stub round trip (POST /v1/messages, kept-alive connection, median of 20): "
        f"{stock_rt:.1f} ms as shipped, {fixed_rt:.1f} ms with TCP_NODELAY; this run uses "
        + ("the stub as shipped" if args.stock_stub else "TCP_NODELAY")
        + f" (latency {STUB_LATENCY * 1000:g} ms)"
    )
    print(
        f"{args.rounds} rounds of ON and OFF children, alternating; each: {args.warmup} warm-up "
        f"runs, {per_child_runs} timed runs, {per_child_paced:.1f} s paced at {args.rate:g}/s\n"
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
        ["per run", "ON", "OFF", "ON - OFF", "ON - OFF by round: median [min, max]"],
        [
            ["runs timed", on["runs"], off["runs"], "", ""],
            row("median wall ms", "median_ms"),
            row("mean wall ms", "mean_ms"),
            row("p90 wall ms", "p90_ms"),
            row("median CPU ms (process_time)", "cpu_median_ms"),
            row("mean CPU ms (process_time)", "cpu_mean_ms"),
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
    print(f"\npaced at {args.rate:g} runs/s, {args.paced_seconds:g} s per mode")
    print_table(
        ["paced", "ON", "OFF", "ON - OFF", "ON - OFF by round: median [min, max]"],
        [
            ["runs", on["paced_runs"], off["paced_runs"], "", ""],
            ["runs started late", on["paced_late"], off["paced_late"], "", ""],
            ["achieved runs/s", f"{on['paced_rate']:.1f}", f"{off['paced_rate']:.1f}", "", ""],
            row("process CPU-s per wall s", "paced_cpu_per_s", 4),
            row("process CPU ms per run", "paced_cpu_per_run_ms"),
        ],
    )
    print(
        "\nwhere the added cost goes, inside the runs themselves (the median over children; "
        "gc: the mean)"
    )

    def situ_cells(key: str, digits: int = 1) -> list[str]:
        cells = []
        for phase in ("in_situ", "paced_in_situ"):
            a, b = on[phase][key], off[phase][key]
            cells += [f"{a:.{digits}f}", f"{b:.{digits}f}", f"{a - b:+.{digits}f}"]
        return cells

    print_table(
        ["in situ", "timed ON", "OFF", "ON - OFF", "paced ON", "OFF", "ON - OFF"],
        [
            [f"Pipeline._finish {label} us", *situ_cells(key)]
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
                *(
                    "/".join(f"{v:.1f}" for v in mode[phase]["gc_per_100_runs"]) if mode else ""
                    for phase in ("in_situ", "paced_in_situ")
                    for mode in (on, off, None)
                ),
            ],
            ["gc ms per run", *situ_cells("gc_ms_per_run", 3)],
        ],
    )
    print("\nthe stages of the timed runs, as the run records time them (median over children)")
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
        f"in situ, ON adds {in_situ_wall_ms * 1000:.0f} us per run (mean wall, timed runs), and "
        f"{paced_added_us:.0f} us of CPU per run at {args.rate:g} runs/s: "
        f"{document['in_situ_cpu_per_s']:.4f} CPU-s per s"
    )
    print(
        "\nthe same parts called alone, 300 times in a hot loop in every child (us per "
        "call; the median over children)"
    )
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
        f"{bottom_up_us['mean_us']:.0f} us), {document['bottom_up_cpu_per_s']:.4f} CPU-s per s "
        f"at {args.rate:g} runs/s (caches warm: a lower bound)"
    )
    if "flush_cpu_ms" in on:
        print(
            f"\none flush of an ON child's metrics ({per_child_runs + args.warmup} timed and "
            f"warm-up runs, ~{per_child_paced * args.rate:.0f} paced): {on['flush_wall_ms']:.1f} "
            f"ms wall, {on['flush_cpu_ms']:.1f} ms CPU; every {DOCUMENTED_FLUSH_INTERVAL_S:g} s "
            f"(MONITOR_FLUSH_INTERVAL, documented but not started by AssistantApp) that would add "
            f"{flush_cpu_share:.4f} CPU-s per s"
        )
    print(
        f"\ntargets, whole runs (pooled over children): added wall per run (median ON - OFF) "
        f"< {TARGET_ADDED_MS:g} ms: {verdict(added_median < TARGET_ADDED_MS)} "
        f"({added_median:+.3f} ms; mean {added_mean:+.3f}); added CPU at {args.rate:g} runs/s "
        f"< {TARGET_CPU_SHARE:g} CPU-s/s: {verdict(added_cpu_share < TARGET_CPU_SHARE)} "
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
    print(f"\n{watch.describe()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs per mode, in all")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per child first")
    parser.add_argument("--rounds", type=int, default=10, help="ON and OFF children each")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="per mode, in all")
    parser.add_argument("--rate", type=float, default=50.0, help="paced runs per second")
    parser.add_argument("--profile-runs", type=int, default=200, help="runs under cProfile")
    parser.add_argument("--stock-stub", action="store_true", help="keep the stub as shipped")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--mode", choices=("on", "off"), help="run one mode in this process")
    parser.add_argument("--stub-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode is not None:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
