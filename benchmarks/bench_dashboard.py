"""``assistant monitor dashboard --once`` on a month of data: wall time of one frame.

The data: a copy of the 30-day store of ``bench_metrics_query.py`` (100 series,
built once and cached under ``benchmarks/.data/``, moved to today and topped up to
the current minute with real minute flushes; see ``_month_store.py``), plus the last
24 hours of pipeline run records (~2 a minute by day, 3% failed) written through the
real ``RunStore``, 50 error lines written through the real JSON log sinks
(``error.jsonl``), and an ``assistant.db`` made by ``assistant db migrate``, all in a
temporary ``ASSISTANT_DATA_DIR``. ``--once`` runs the health checks, which call the
LLM API (``GET /v1/models``): ``LLM_BASE_URL``/``LLM_API_KEY`` point at the stub LLM
server (``assistant.stubllm.StubLLMServer``) started inside this process, so it works
offline and the checks are healthy. Nothing else of the caller's environment is
kept but ``PATH``, ``HOME`` and the locale; bytecode is cached
(``PYTHONDONTWRITEBYTECODE`` unset, ``PYTHONPYCACHEPREFIX=benchmarks/.data/pycache``),
as an installed copy has it (see ``_perf.py``).

Measured with pyperf, in the same run (by default 5 worker processes x (1 warm-up +
3 values) per benchmark, one benchmark after the other):

* the installed command, ``.venv/bin/assistant monitor dashboard --once`` (the
  default ``--period 60m``), with ``COLUMNS=120 LINES=40``, against
  ``.venv/bin/python -c pass`` and ``assistant --version`` (start-up alone); also
  ``--period 24h`` for context (``Runner.bench_command``: wall time, stdout to
  /dev/null; peak RSS from pyperf's ``command_max_rss``). Each command first runs
  once, its frame checked (exit 0, healthy, its panels there, the failed runs and
  the error lines shown);
* in process (``Runner.bench_time_func``; each worker loads the settings and
  warms up once, untimed): ``take_snapshot()`` with a new ``HealthProbe`` (the
  checks run, as in ``--once``), ``take_snapshot()`` with the probe's report cached
  (what a live refresh costs between health checks), ``render_frame()`` alone (it
  builds the rich layout), and ``render_frame()`` plus printing it to a 120x40
  in-memory console (what ``--once`` does after the snapshot); and the parts of a
  snapshot: ``metrics_report``, the health checks, the store reads (per-minute
  series, today's cost, breakers, failed runs, alerts) and the error log.

Target: ``monitor dashboard --once`` < 500 ms (median wall, installed command).

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--show-frame] [--no-in-process]
[pyperf options: --fast, -p N, -n N, -o FILE ...]``. About 2 minutes (``--fast``: 1
minute; the store's top-up takes longer late in the UTC day).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ASSISTANT, PYTHON, LoadWatch
from _perf import (
    BENCH_API_KEY,
    CommandBench,
    Target,
    command_env,
    machine,
    median,
    summary,
    verdict,
)

TARGET_S = 0.500
WIDTH, HEIGHT = 120, 40
PERIOD = "60m"
ERROR_LINES = 50
TARGET_ROW = "monitor dashboard --once"
REFERENCE = "python -c pass"


def commands() -> dict[str, list[str]]:
    dashboard = [str(ASSISTANT), "monitor", "dashboard", "--once"]
    return {
        REFERENCE: [str(PYTHON), "-c", "pass"],
        "assistant --version (start-up only)": [str(ASSISTANT), "--version"],
        TARGET_ROW: dashboard,
        "monitor dashboard --once --period 24h": [*dashboard, "--period", "24h"],
    }


def write_error_lines(settings: Any, count: int) -> None:
    """``count`` ERROR lines through the real JSON sinks (they land in error.jsonl)."""
    from loguru import logger

    from assistant_monitoring.logs.setup import configure_logging

    handle = configure_logging(
        log_dir=settings.log_dir,
        level="INFO",
        console_level="CRITICAL",
        environment=settings.profile,
        version="bench",
        max_bytes=10 * 2**20,
        max_files=3,
        stream=io.StringIO(),
    )
    try:
        for i in range(count):
            logger.bind(conversation_id=f"c_{i:012x}").error(
                f"anthropic request failed: TimeoutError after 30 s (attempt {i % 3 + 1})"
            )
    finally:
        handle.close()
        logger.remove()


def check_frame(name: str, text: str) -> None:
    """The frame must be healthy and show its panels, failed runs and error lines."""
    if not name.startswith("monitor dashboard"):
        return
    for needed in ("HEALTHY", "health", "breakers", "activity", "models", "run_", "TimeoutError"):
        if needed not in text:
            raise RuntimeError(f"{name}: {needed!r} not in the frame:\n{text}")
    widest = max(len(line) for line in text.splitlines())
    if widest > WIDTH:
        raise RuntimeError(f"{name}: a line of {widest} columns (COLUMNS={WIDTH})")


# -- in process, in pyperf's workers ----------------------------------------------------


@dataclass(frozen=True)
class Context:
    settings: Any
    warm: Any  # a HealthProbe whose report is cached
    snapshot: Any


@functools.cache
def context() -> Context:
    """The settings of the worker's environment (the benchmark's), a warm probe, a
    snapshot; checked. Made once per worker, before its first timed value."""
    from assistant_monitoring.dashboard import HealthProbe, take_snapshot
    from assistant_monitoring.settings import load_settings

    settings = load_settings(environ=dict(os.environ)).settings
    warm = HealthProbe(settings, 3600.0)
    snapshot = take_snapshot(settings, period=PERIOD, health=warm)
    if snapshot.health is None or snapshot.health.status.value != "healthy":
        raise RuntimeError(f"in process: health {snapshot.health}")
    if not snapshot.report.get("has_data") or not snapshot.failed_runs:
        raise RuntimeError("in process: no data, or no failed runs, in the snapshot")
    return Context(settings, warm, snapshot)


def fresh_snapshot(ctx: Context) -> None:
    from assistant_monitoring.dashboard import HealthProbe, take_snapshot

    take_snapshot(ctx.settings, period=PERIOD, health=HealthProbe(ctx.settings, 30.0))


def cached_snapshot(ctx: Context) -> None:
    from assistant_monitoring.dashboard import take_snapshot

    take_snapshot(ctx.settings, period=PERIOD, health=ctx.warm)


def render(ctx: Context) -> None:
    from assistant_monitoring.cli.dashboard_view import render_frame

    render_frame(ctx.snapshot, width=WIDTH, height=HEIGHT, profile=ctx.settings.profile)


def render_and_print(ctx: Context) -> None:
    from rich.console import Console

    from assistant_monitoring.cli.dashboard_view import render_frame

    console = Console(
        file=io.StringIO(), width=WIDTH, height=HEIGHT, force_terminal=False, color_system=None
    )
    frame = render_frame(ctx.snapshot, width=WIDTH, height=HEIGHT, profile=ctx.settings.profile)
    console.print(frame, height=max(console.height, 24))


def health_checks(ctx: Context) -> None:
    from assistant_monitoring.dashboard import HealthProbe

    HealthProbe(ctx.settings, 30.0).get()


def report(ctx: Context) -> None:
    from assistant_monitoring.metrics.service import metrics_report

    metrics_report(ctx.settings, period=PERIOD)


def store_reads(ctx: Context) -> None:
    from assistant_monitoring.dashboard.data import _read_store

    now = time.time()
    _read_store(ctx.snapshot, ctx.settings, now - 3600, now)


def error_log(ctx: Context) -> None:
    from assistant_monitoring.dashboard.data import _error_lines

    _error_lines(ctx.settings)


IN_PROCESS: dict[str, Callable[[Context], object]] = {
    "take_snapshot(), new HealthProbe (checks run, as --once)": fresh_snapshot,
    "take_snapshot(), health report cached": cached_snapshot,
    "render_frame() alone (builds the layout)": render,
    "render_frame() + print to a 120x40 console": render_and_print,
    "part: health checks (run_health, 5 checks)": health_checks,
    f"part: metrics_report(period={PERIOD!r})": report,
    "part: store reads (minutes, cost today, breakers, runs, alerts)": store_reads,
    "part: last error lines (error.jsonl)": error_log,
}


def timed(call: Callable[[Context], object]) -> Callable[[int], float]:
    """A ``bench_time_func`` function: the context made first, untimed."""

    def time_func(loops: int) -> float:
        ctx = context()
        started = time.perf_counter()
        for _ in range(loops):
            call(ctx)
        return time.perf_counter() - started

    return time_func


# -- main -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-frame", action="store_true", help="print one frame too")
    parser.add_argument(
        "--no-in-process", action="store_true", help="time the installed command only"
    )


def run_benchmarks(bench: CommandBench, env: dict[str, str]) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    for name, argv in commands().items():
        bench.command(name, argv, env)
    if not bench.state.get("no_in_process"):
        for name, call in IN_PROCESS.items():
            bench.time_func(name, timed(call), env)


def main() -> None:
    bench = CommandBench(__doc__, processes=5, values=3, add_arguments=add_arguments)
    args = bench.args
    if bench.is_worker:
        run_benchmarks(bench, {})
        return

    from _month_store import migrate_database, prepare_month_store, seed_runs

    from assistant.stubllm import StubLLMServer
    from assistant_monitoring.settings import load_settings

    watch = LoadWatch()
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    data_dir = work / "data"
    stub = StubLLMServer(host="127.0.0.1").start()
    try:
        store = prepare_month_store(data_dir, top_up=True)
        started = time.perf_counter()
        runs_written: dict[str, float] = dict(seed_runs(data_dir, hours=24))
        runs_written["seconds"] = round(time.perf_counter() - started, 1)
        env = command_env(
            ASSISTANT_DATA_DIR=str(data_dir),
            LLM_BASE_URL=stub.url,
            LLM_API_KEY=BENCH_API_KEY,
            COLUMNS=str(WIDTH),
            LINES=str(HEIGHT),
        )
        migrate_database(env)
        write_error_lines(load_settings(environ=env).settings, ERROR_LINES)
        frame = ""
        for name, argv in commands().items():
            # Checked once; this run also fills the bytecode cache.
            text = bench.check(argv, env).stdout.decode(errors="replace")
            check_frame(name, text)
            if name == TARGET_ROW:
                frame = text
        bench.share(no_in_process=args.no_in_process)
        models_before = len(stub.requests)
        run_benchmarks(bench, env)
        models = len(stub.requests) - models_before
    finally:
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = bench.results
    target_s = median(results[TARGET_ROW])
    target = Target(f"< {TARGET_S * 1000:.0f} ms", target_s < TARGET_S)
    commands_run = {name: results[name] for name in commands()}
    print()
    print(machine(list(results.values())))
    s = store["store"]
    print(
        f"store: {s['series']} series, {s['size_bytes'] / 2**20:.1f} MiB, "
        f"{s['minute_rows']:,} minute / {s['hour_rows']:,} hour / {s['day_rows']:,} day rows "
        f"(template {'built now' if store['template_built_now'] else 'cached'}, shifted "
        f"{store['shifted_days']} day(s), {store['top_up_minute_flushes']} top-up flushes; "
        f"{store['prepare_seconds']} s); {runs_written['runs']:,} run records in the last 24 h "
        f"({runs_written['failed']} failed); {ERROR_LINES} lines in error.jsonl"
    )
    print(
        f"stub LLM at 127.0.0.1 answered {models} requests during the benchmarks "
        "(one GET /v1/models per dashboard run and per new HealthProbe)"
    )
    derived = summary(
        commands_run,
        REFERENCE,
        {TARGET_ROW: target},
        title=f"installed command, COLUMNS={WIDTH} LINES={HEIGHT}",
    )
    in_process = {name: results[name] for name in IN_PROCESS if name in results}
    if in_process:
        first = next(iter(in_process))
        derived |= summary(
            in_process,
            first,
            title=f"in process (period {PERIOD}, {WIDTH}x{HEIGHT}), against a whole snapshot",
        )
    bench.annotate(derived)
    if args.show_frame:
        print(f"\none frame of `monitor dashboard --once`:\n{frame}")
    print(f"\n{watch.describe()}")
    print(
        f"target monitor dashboard --once < {TARGET_S * 1000:.0f} ms: {verdict(target.met)} "
        f"({target_s * 1000:.0f} ms, {target_s / median(results[REFERENCE]):.1f}x python -c pass)"
    )


if __name__ == "__main__":
    main()
