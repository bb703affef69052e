"""``assistant monitor health`` as people run it: wall time and peak RSS of the installed command.

Setup: a temporary ``ASSISTANT_DATA_DIR`` whose ``assistant.db`` is created by
running ``.venv/bin/assistant db migrate`` once, and the stub LLM server
(``assistant.stubllm.StubLLMServer``, as shipped) started inside this process on
127.0.0.1. Every command runs with ``ASSISTANT_ENV_FILE=none``, that data dir,
``LLM_BASE_URL=<stub url>`` and ``LLM_API_KEY=sk-bench-000000000000`` (any other
setting variable of the calling shell is removed), so the checks are healthy and the
LLM check really does its ``GET /v1/models``.

Measured as subprocesses, in the same run, commands taking turns so drift hits them
alike (median of 15 runs after 2 warm-up runs; stdout read through a pipe, as a
script would):

* ``.venv/bin/python -c pass``: the reference;
* ``assistant --version``: the CLI's start-up alone;
* ``assistant monitor health``: all five checks (database, llm, memory, disk,
  breakers), the colored table;
* ``... --json``, ``... --check llm``, and the four checks named one by one
  (``--check database --check llm --check memory --check disk``);
* when the environment sets ``PYTHONDONTWRITEBYTECODE`` (some sandboxes do), the
  command as that environment runs it: the project's own sources compiled at every
  run. The main rows keep their bytecode in a cache under ``benchmarks/.data/health/``
  (``PYTHONPYCACHEPREFIX``), as an installed copy would, exactly as
  ``bench_metrics_query.py`` does.

Peak RSS comes from separate runs (5 per command, also interleaved) under GNU
``/usr/bin/time -f %M``, which adds its own fork and exec to the wall time. Not
from ``wait4``'s ``ru_maxrss``: a child's high-water mark includes the benchmark
process it was forked from, up to its ``exec`` (see ``_common.run_with_rusage``).
The ``--json`` runs also give the time the checks themselves took (the report's
``durationMs``). Then one extra run under cProfile (in a child process: imports,
settings, logging, checks, the metrics flush at exit) shows where the time goes.

Targets: ``monitor health`` < 500 ms wall and peak RSS < 60 MiB.

Run: ``.venv/bin/python benchmarks/bench_health.py [--runs N] [--rss-runs N] [--json]``. About 50 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    BENCH_DIR,
    DATA_DIR,
    PYTHON,
    ChildRun,
    LoadWatch,
    dump_json,
    machine_info,
    median,
    package_profile,
    print_machine,
    print_table,
    run_with_rusage,
    stub_env,
    verdict,
)

TARGET_WALL_S = 0.500
TARGET_RSS_MIB = 60.0
ROOT = DATA_DIR / "health"
PYCACHE = ROOT / "pycache"
PROFILE_TOP = 15

Command = tuple[list[str], dict[str, str]]


def base_env(data_dir: Path, stub_url: str) -> dict[str, str]:
    """The caller's environment without any assistant setting, plus ours."""
    return stub_env(data_dir, stub_url)


def cached_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the bytecode written to (and read from) a cache, as an install has it."""
    cached = dict(env)
    cached.pop("PYTHONDONTWRITEBYTECODE", None)
    cached["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return cached


def commands(inherited: dict[str, str]) -> dict[str, Command]:
    env = cached_env(inherited)
    health = [str(ASSISTANT), "monitor", "health"]
    cmds: dict[str, Command] = {
        "python -c pass": ([str(PYTHON), "-c", "pass"], env),
        "assistant --version (start-up only)": ([str(ASSISTANT), "--version"], env),
        "monitor health": (health, env),
        "monitor health --json": ([*health, "--json"], env),
        "monitor health --check llm": ([*health, "--check", "llm"], env),
        "monitor health, 4 checks named": (
            [*health, *(f"--check={name}" for name in ("database", "llm", "memory", "disk"))],
            env,
        ),
    }
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        cmds["monitor health, PYTHONDONTWRITEBYTECODE=1 inherited"] = (health, inherited)
    return cmds


def is_target_row(name: str) -> bool:
    return name.startswith("monitor health") and "inherited" not in name


def check_run(name: str, run: ChildRun) -> None:
    """The command must report healthy, having run the checks it was asked for."""
    text = run.stdout.decode(errors="replace")
    if run.exit_code != 0:
        raise RuntimeError(f"{name}: exit {run.exit_code}: {text[-800:]}")
    if not name.startswith("monitor health"):
        return
    if "--json" in name:
        report = json.loads(text)
        if report["status"] != "pass" or not any(k.startswith("llm:") for k in report["checks"]):
            raise RuntimeError(f"{name}: unexpected report {text[:800]}")
    elif "HEALTHY" not in text or "llm" not in text:
        raise RuntimeError(f"{name}: unexpected output {text[:800]}")


def time_commands(
    cmds: Mapping[str, Command], runs: int, warmup: int, rss_runs: int
) -> tuple[dict[str, list[ChildRun]], dict[str, list[float]], list[float]]:
    """Interleaved runs: every timed run, peak RSS in MiB, the ``--json`` durationMs."""
    for name, (argv, env) in cmds.items():
        for _ in range(warmup):  # the first one also fills the bytecode cache
            check_run(name, run_with_rusage(argv, env))
    results: dict[str, list[ChildRun]] = {name: [] for name in cmds}
    checks_ms: list[float] = []
    for _ in range(runs):
        for name, (argv, env) in cmds.items():
            run = run_with_rusage(argv, env)
            check_run(name, run)
            results[name].append(run)
            if name == "monitor health --json":
                checks_ms.append(float(json.loads(run.stdout)["durationMs"]))
    rss: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(rss_runs):
        for name, (argv, env) in cmds.items():
            run = run_with_rusage(argv, env, peak_rss=True)
            check_run(name, run)
            rss[name].append(run.max_rss_kib / 1024)
    return results, rss, checks_ms


# -- where the time goes (cProfile, in a child process) ------------------------------


def profile_child(out: Path) -> None:
    """Run ``assistant monitor health`` in this process under cProfile; write the stats."""
    import contextlib
    import cProfile
    import io
    import pstats
    import time

    profiler = cProfile.Profile()
    code: object = 0
    start = time.perf_counter()
    profiler.enable()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from assistant.cli import main

            try:
                main(["monitor", "health"])
            except SystemExit as exit_:
                code = exit_.code
            from assistant_monitoring.metrics.runtime import stop_metrics

            stop_metrics()  # what atexit does: sample the process, flush, close the store
    finally:
        profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    landmarks: dict[str, float] = {}
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), values in entries.items():
        cumulative = values[3]
        if function == "_find_and_load" and "importlib._bootstrap" in filename:
            landmarks["imports (importlib _find_and_load, all modules)"] = cumulative
        elif function == "get_command" and filename.endswith("typer/main.py"):
            landmarks["typer.main.get_command (click tree)"] = cumulative
    out.write_text(
        json.dumps(
            {
                "exit_code": code,
                "wall_s": wall,
                "landmarks": landmarks,
                "functions": package_profile(stats),
            }
        )
    )


def run_profile(env: Mapping[str, str], tmp: Path) -> dict[str, Any]:
    out = tmp / "profile.json"
    done = subprocess.run(
        [str(PYTHON), str(BENCH_DIR / "bench_health.py"), "--profile-child", str(out)],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"profile child failed ({done.returncode}): {done.stderr[-800:]}")
    document: dict[str, Any] = json.loads(out.read_text())
    functions = sorted(
        (
            {"function": name, **values}
            for name, values in document["functions"].items()
            if not name.endswith("(<module>)")
        ),
        key=lambda row: row["cumtime_s"],
        reverse=True,
    )
    modules = sorted(
        (
            {"function": name, **values}
            for name, values in document["functions"].items()
            if name.endswith("(<module>)")
        ),
        key=lambda row: row["cumtime_s"],
        reverse=True,
    )
    return {
        "exit_code": document["exit_code"],
        "wall_ms": document["wall_s"] * 1000,
        "landmarks_ms": {k: v * 1000 for k, v in document["landmarks"].items()},
        "top_functions": [
            {
                "function": r["function"],
                "calls": r["calls"],
                "cumtime_ms": r["cumtime_s"] * 1000,
                "tottime_ms": r["tottime_s"] * 1000,
            }
            for r in functions[:PROFILE_TOP]
        ],
        "top_modules": [
            {"module": r["function"].split(":", 1)[0], "import_ms": r["cumtime_s"] * 1000}
            for r in modules[:8]
        ],
    }


# -- main -------------------------------------------------------------------------------


def summarize(
    results: Mapping[str, list[ChildRun]], peak_rss: Mapping[str, list[float]]
) -> list[dict[str, Any]]:
    bare = median([r.wall_s for r in results["python -c pass"]])
    rows = []
    for name, runs in results.items():
        walls = [r.wall_s for r in runs]
        rss = peak_rss[name]
        row: dict[str, Any] = {
            "command": name,
            "median_ms": median(walls) * 1000,
            "min_ms": min(walls) * 1000,
            "max_ms": max(walls) * 1000,
            "x_python": median(walls) / bare,
            "cpu_ms": median([r.cpu_s for r in runs]) * 1000,
            "rss_median_mib": median(rss),
            "rss_max_mib": max(rss),
        }
        if is_target_row(name):
            row["met_wall"] = median(walls) < TARGET_WALL_S
            row["met_rss"] = max(rss) < TARGET_RSS_MIB
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per command first")
    parser.add_argument("--rss-runs", type=int, default=5, help="runs per command under time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--profile-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile_child is not None:
        profile_child(args.profile_child)
        return

    from assistant.stubllm import StubLLMServer

    watch = LoadWatch()
    ROOT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-health-"))
    stub = StubLLMServer(host="127.0.0.1").start()
    try:
        data_dir = tmp / "data"
        inherited = base_env(data_dir, stub.url)
        migrate = run_with_rusage([str(ASSISTANT), "db", "migrate"], cached_env(inherited))
        if migrate.exit_code != 0 or not (data_dir / "assistant.db").exists():
            raise RuntimeError(f"assistant db migrate failed: exit {migrate.exit_code}")
        cmds = commands(inherited)
        results, peak_rss, checks_ms = time_commands(cmds, args.runs, args.warmup, args.rss_runs)
        profile = None if args.no_profile else run_profile(cached_env(inherited), tmp)
        model_requests = sum(1 for r in stub.requests if r.path.rstrip("/").endswith("/models"))
    finally:
        stub.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = summarize(results, peak_rss)
    # Every `monitor health` row runs the LLM check: warm-up and timed runs, and the
    # profiled run.
    expected_llm = sum(name.startswith("monitor health") for name in cmds) * (
        args.runs + args.warmup + args.rss_runs
    ) + (0 if args.no_profile else 1)
    info = machine_info()
    document = {
        "benchmark": "health",
        "machine": info,
        "load": watch.report(),
        "runs": args.runs,
        "warmup": args.warmup,
        "rss_runs": args.rss_runs,
        "targets": {"wall_ms": TARGET_WALL_S * 1000, "peak_rss_mib": TARGET_RSS_MIB},
        "commands": rows,
        "checks_duration_ms": {
            "median": statistics.median(checks_ms),
            "min": min(checks_ms),
            "max": max(checks_ms),
        },
        "stub_models_requests": model_requests,
        "expected_models_requests": expected_llm,
        "profile": profile,
    }
    if args.json:
        dump_json(document)
        return

    print_machine(info)
    print(
        f"median of {args.runs} runs after {args.warmup} warm-up runs per command, "
        f"interleaved; peak RSS: {args.rss_runs} more runs each under /usr/bin/time -f %M; "
        "stub LLM at 127.0.0.1 "
        f"({model_requests} GET /v1/models answered, {expected_llm} expected)\n"
    )
    print_table(
        [
            *("command", "median ms", "min ms", "max ms", "x python", "CPU ms"),
            *("RSS MiB", "max RSS", "< 500 ms", "< 60 MiB"),
        ],
        [
            [
                row["command"],
                f"{row['median_ms']:.1f}",
                f"{row['min_ms']:.1f}",
                f"{row['max_ms']:.1f}",
                f"{row['x_python']:.1f}x",
                f"{row['cpu_ms']:.0f}",
                f"{row['rss_median_mib']:.1f}",
                f"{row['rss_max_mib']:.1f}",
                verdict(row["met_wall"]) if "met_wall" in row else "-",
                verdict(row["met_rss"]) if "met_rss" in row else "-",
            ]
            for row in rows
        ],
    )
    checks = document["checks_duration_ms"]
    print(
        f"\nthe checks themselves (--json report's durationMs): median {checks['median']:.1f} ms "
        f"(min {checks['min']:.1f}, max {checks['max']:.1f})"
    )
    if profile is not None:
        print(
            f"\none `monitor health` in-process under cProfile (a child process, "
            f"exit {profile['exit_code']}): {profile['wall_ms']:.0f} ms "
            "profiled wall, inflated by the profiler; overlapping cumulative times"
        )
        print_table(
            ["landmark", "cumulative ms"],
            [[name, f"{value:.1f}"] for name, value in profile["landmarks_ms"].items()],
        )
        print()
        print_table(
            ["assistant/assistant_monitoring function", "calls", "cumul. ms", "own ms"],
            [
                [r["function"], r["calls"], f"{r['cumtime_ms']:.1f}", f"{r['tottime_ms']:.1f}"]
                for r in profile["top_functions"]
            ],
        )
        print()
        print_table(
            ["module import (its own top level, with what it imports)", "ms"],
            [[r["module"], f"{r['import_ms']:.1f}"] for r in profile["top_modules"]],
        )
    print(f"\n{watch.describe()}")


if __name__ == "__main__":
    main()
