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
offline and the checks are healthy. Every other assistant setting of the calling
shell is removed.

Measured, in the same run:

* the installed command, ``.venv/bin/assistant monitor dashboard --once`` (the
  default ``--period 60m``), with ``COLUMNS=120 LINES=40`` and stdout read through a
  pipe, against ``.venv/bin/python -c pass`` and ``assistant --version`` (start-up
  alone); also ``--period 24h`` for context. Median of 10 runs after a warm-up,
  commands taking turns so drift hits them alike; CPU time of each from ``wait4``,
  and its peak RSS from 3 more runs under GNU ``time -f %M`` (``wait4``'s own figure
  includes this benchmark process's memory up to the ``exec``; see ``_common.py``);
  the frame is checked once (exit 0, healthy, its panels there, the failed runs and
  the error lines shown). The bytecode is cached under ``benchmarks/.data/dashboard``
  (``PYTHONPYCACHEPREFIX``), as an installed copy has it; when the environment sets
  ``PYTHONDONTWRITEBYTECODE``, one more row shows the command as it runs there;
* in process (settings loaded once, median of 10 after a warm-up):
  ``take_snapshot()`` with a new ``HealthProbe`` (the checks run, as in ``--once``),
  ``take_snapshot()`` with the probe's report cached (what a live refresh costs
  between health checks), ``render_frame()`` alone (it builds the rich layout), and
  ``render_frame()`` plus printing it to a 120x40 in-memory console (what ``--once``
  does after the snapshot); and the parts of a snapshot: ``metrics_report``, the
  health checks, the store reads (per-minute series, today's cost, breakers, failed
  runs, alerts) and the error log.

Target: ``monitor dashboard --once`` < 500 ms (wall, installed command).

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--runs N] [--json]``. About
1 minute (the store's top-up takes longer late in the UTC day).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    DATA_DIR,
    GNU_TIME,
    PYTHON,
    ChildRun,
    LoadWatch,
    dump_json,
    machine_info,
    median,
    print_machine,
    print_table,
    run_with_rusage,
    stub_env,
    time_call,
    verdict,
)

TARGET_S = 0.500
ROOT = DATA_DIR / "dashboard"
PYCACHE = ROOT / "pycache"
WIDTH, HEIGHT = 120, 40
PERIOD = "60m"
ERROR_LINES = 50
TARGET_ROW = "monitor dashboard --once"

Command = tuple[list[str], dict[str, str]]


def base_env(data_dir: Path, stub_url: str) -> dict[str, str]:
    """The caller's environment without any assistant setting, plus ours."""
    return stub_env(data_dir, stub_url, COLUMNS=str(WIDTH), LINES=str(HEIGHT))


def cached_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the bytecode written to (and read from) a cache, as an install has it."""
    cached = dict(env)
    cached.pop("PYTHONDONTWRITEBYTECODE", None)
    cached["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return cached


def commands(inherited: dict[str, str]) -> dict[str, Command]:
    env = cached_env(inherited)
    dashboard = [str(ASSISTANT), "monitor", "dashboard", "--once"]
    cmds: dict[str, Command] = {
        "python -c pass": ([str(PYTHON), "-c", "pass"], env),
        "assistant --version (start-up only)": ([str(ASSISTANT), "--version"], env),
        TARGET_ROW: (dashboard, env),
        "monitor dashboard --once --period 24h": ([*dashboard, "--period", "24h"], env),
    }
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        cmds["monitor dashboard --once, PYTHONDONTWRITEBYTECODE=1 inherited"] = (
            dashboard,
            inherited,
        )
    return cmds


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


def check_frame(name: str, run: ChildRun) -> None:
    """The frame must be healthy and show its panels, failed runs and error lines."""
    text = run.stdout.decode(errors="replace")
    if run.exit_code != 0:
        raise RuntimeError(f"{name}: exit {run.exit_code}: {text[-800:]}")
    if not name.startswith("monitor dashboard"):
        return
    for needed in ("HEALTHY", "health", "breakers", "activity", "models", "run_", "TimeoutError"):
        if needed not in text:
            raise RuntimeError(f"{name}: {needed!r} not in the frame:\n{text}")
    widest = max(len(line) for line in text.splitlines())
    if widest > WIDTH:
        raise RuntimeError(f"{name}: a line of {widest} columns (COLUMNS={WIDTH})")


def time_commands(cmds: Mapping[str, Command], runs: int) -> tuple[dict[str, list[ChildRun]], str]:
    frame = ""
    for name, (argv, env) in cmds.items():
        first = run_with_rusage(argv, env)  # warm-up (page cache, bytecode cache), and a check
        check_frame(name, first)
        if name == TARGET_ROW:
            frame = first.stdout.decode(errors="replace")
    results: dict[str, list[ChildRun]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, (argv, env) in cmds.items():
            run = run_with_rusage(argv, env)
            if run.exit_code != 0:
                raise RuntimeError(f"{name}: exit {run.exit_code}")
            results[name].append(run)
    return results, frame


def peak_rss(cmds: Mapping[str, Command], runs: int = 3) -> dict[str, float]:
    """Median peak RSS (MiB) of each command, from separate runs under GNU time."""
    if not GNU_TIME.exists():
        return {}
    return {
        name: median([run_with_rusage(argv, env, peak_rss=True).max_rss_kib for _ in range(runs)])
        / 1024
        for name, (argv, env) in cmds.items()
    }


def time_in_process(env: Mapping[str, str], runs: int) -> dict[str, list[float]]:
    from rich.console import Console

    from assistant_monitoring.dashboard import HealthProbe, render_frame, take_snapshot
    from assistant_monitoring.dashboard.data import _error_lines, _read_store
    from assistant_monitoring.metrics.service import metrics_report
    from assistant_monitoring.settings import load_settings

    settings = load_settings(environ=env).settings
    warm = HealthProbe(settings, 3600.0)
    snapshot = take_snapshot(settings, period=PERIOD, health=warm)  # warm-up, and a check
    if snapshot.health is None or snapshot.health.status.value != "healthy":
        raise RuntimeError(f"in process: health {snapshot.health}")
    if not snapshot.report.get("has_data") or not snapshot.failed_runs:
        raise RuntimeError("in process: no data, or no failed runs, in the snapshot")

    def fresh_snapshot() -> None:
        take_snapshot(settings, period=PERIOD, health=HealthProbe(settings, 30.0))

    def cached_snapshot() -> None:
        take_snapshot(settings, period=PERIOD, health=warm)

    def render() -> None:
        render_frame(snapshot, width=WIDTH, height=HEIGHT, profile=settings.profile)

    def render_and_print() -> None:
        console = Console(
            file=io.StringIO(), width=WIDTH, height=HEIGHT, force_terminal=False, color_system=None
        )
        frame = render_frame(snapshot, width=WIDTH, height=HEIGHT, profile=settings.profile)
        console.print(frame, height=max(console.height, 24))

    def health_checks() -> None:
        HealthProbe(settings, 30.0).get()

    def report() -> None:
        metrics_report(settings, period=PERIOD)

    def store_reads() -> None:
        now = time.time()
        _read_store(snapshot, settings, now - 3600, now)

    def error_log() -> None:
        _error_lines(settings)

    calls: dict[str, Callable[[], None]] = {
        "take_snapshot(), new HealthProbe (checks run, as --once)": fresh_snapshot,
        "take_snapshot(), health report cached": cached_snapshot,
        "render_frame() alone (builds the layout)": render,
        "render_frame() + print to a 120x40 console": render_and_print,
        "  part: health checks (run_health, 5 checks)": health_checks,
        f"  part: metrics_report(period={PERIOD!r})": report,
        "  part: store reads (minutes, cost today, breakers, runs, alerts)": store_reads,
        "  part: last error lines (error.jsonl)": error_log,
    }
    for call in calls.values():
        call()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            times[name].append(time_call(call))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--show-frame", action="store_true", help="print one frame too")
    args = parser.parse_args(argv)

    from _month_store import migrate_database, prepare_month_store, seed_runs

    from assistant.stubllm import StubLLMServer
    from assistant_monitoring.settings import load_settings

    watch = LoadWatch()
    ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    data_dir = work / "data"
    stub = StubLLMServer(host="127.0.0.1").start()
    try:
        store = prepare_month_store(data_dir, top_up=True)
        started = time.perf_counter()
        runs_written: dict[str, float] = dict(seed_runs(data_dir, hours=24))
        runs_written["seconds"] = round(time.perf_counter() - started, 1)
        inherited = base_env(data_dir, stub.url)
        migrate_database(cached_env(inherited))
        write_error_lines(load_settings(environ=inherited).settings, ERROR_LINES)
        models_before = len(stub.requests)
        cli, frame = time_commands(commands(inherited), args.runs)
        cli_models = len(stub.requests) - models_before
        rss = peak_rss(commands(inherited))
        in_process = time_in_process(cached_env(inherited), args.runs)
    finally:
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)

    bare = median([r.wall_s for r in cli["python -c pass"]])
    cli_rows: list[dict[str, Any]] = []
    for name, results in cli.items():
        walls = [r.wall_s for r in results]
        row: dict[str, Any] = {
            "command": name,
            "median_ms": median(walls) * 1000,
            "min_ms": min(walls) * 1000,
            "x_python": median(walls) / bare,
            "minus_python_ms": (median(walls) - bare) * 1000,
            "peak_rss_mib": rss.get(name),
            "cpu_ms": median([r.cpu_s for r in results]) * 1000,
            "walls_ms": [round(w * 1000, 1) for w in walls],
            "cpu_each_ms": [round(r.cpu_s * 1000, 1) for r in results],
        }
        if name == TARGET_ROW:
            row["target_ms"] = TARGET_S * 1000
            row["met"] = median(walls) < TARGET_S
        cli_rows.append(row)
    process_rows = [
        {"call": name, "median_ms": median(values) * 1000, "min_ms": min(values) * 1000}
        for name, values in in_process.items()
    ]
    target = next(row for row in cli_rows if row["command"] == TARGET_ROW)
    info = machine_info()
    document = {
        "machine": info,
        "load": watch.report(),
        "store": store,
        "runs_seeded": runs_written,
        "error_lines": ERROR_LINES,
        "llm_requests_during_cli_runs": cli_models,
        "cli": cli_rows,
        "in_process": process_rows,
        "target_met": target["met"],
    }
    if args.json:
        dump_json(document)
        return

    print_machine(info)
    s = store["store"]
    print(
        f"store: {s['series']} series, {s['size_bytes'] / 2**20:.1f} MiB, "
        f"{s['minute_rows']:,} minute / {s['hour_rows']:,} hour / {s['day_rows']:,} day rows "
        f"(template {'built now' if store['template_built_now'] else 'cached'}, shifted "
        f"{store['shifted_days']} day(s), {store['top_up_minute_flushes']} top-up flushes; "
        f"{store['prepare_seconds']} s); {runs_written['runs']:,} run records in the last 24 h "
        f"({runs_written['failed']} failed); {ERROR_LINES} lines in error.jsonl"
    )
    dashboard_runs = (args.runs + 1) * sum(name.startswith("monitor") for name in cli)
    print(
        f"stub LLM at 127.0.0.1 answered {cli_models} requests during the "
        f"{dashboard_runs} dashboard runs (one GET /v1/models each)\n"
    )
    print(
        f"installed command, COLUMNS={WIDTH} LINES={HEIGHT}, median of {args.runs} "
        "(interleaved; CPU from wait4; peak RSS from 3 runs under GNU time)"
    )
    print_table(
        [
            *("command", "median ms", "min ms", "x python", "- python ms"),
            *("RSS MiB", "CPU ms", "target", "verdict"),
        ],
        [
            [
                row["command"],
                f"{row['median_ms']:.1f}",
                f"{row['min_ms']:.1f}",
                f"{row['x_python']:.1f}x",
                f"{row['minus_python_ms']:.1f}",
                "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.1f}",
                f"{row['cpu_ms']:.0f}",
                f"< {row['target_ms']:.0f} ms" if "target_ms" in row else "-",
                verdict(row["met"]) if "met" in row else "-",
            ]
            for row in cli_rows
        ],
    )
    print(f"\nin process, median of {args.runs} (period {PERIOD}, {WIDTH}x{HEIGHT})")
    print_table(
        ["call", "median ms", "min ms"],
        [[row["call"], f"{row['median_ms']:.2f}", f"{row['min_ms']:.2f}"] for row in process_rows],
    )
    if args.show_frame:
        print(f"\none frame of `monitor dashboard --once`:\n{frame}")
    print(f"\ntarget monitor dashboard --once < 500 ms: {verdict(target['met'])}")
    print(watch.describe())


if __name__ == "__main__":
    main()
