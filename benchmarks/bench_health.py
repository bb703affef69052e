"""``assistant monitor health`` as people run it: wall time and peak RSS of the installed command.

Setup: a temporary ``ASSISTANT_DATA_DIR`` whose ``assistant.db`` is created by
running ``.venv/bin/assistant db migrate`` once, and the stub LLM server
(``assistant.stubllm.StubLLMServer``, as shipped) started inside this process on
127.0.0.1. Every command runs with ``ASSISTANT_ENV_FILE=none``, that data dir,
``LLM_BASE_URL=<stub url>`` and ``LLM_API_KEY=sk-bench-000000000000``, and nothing else
of the caller's environment but ``PATH``, ``HOME`` and the locale, so the checks are
healthy and the LLM check really does its ``GET /v1/models``. Bytecode is cached
(``PYTHONDONTWRITEBYTECODE`` unset, ``PYTHONPYCACHEPREFIX=benchmarks/.data/pycache``),
as an installed copy has it; see ``_perf.py``.

Measured with pyperf's ``Runner.bench_command`` (wall time of ``Popen(command).wait()``,
stdout to /dev/null; by default 5 worker processes x (1 warm-up + 3 values) per command,
one command after the other), in the same run:

* ``.venv/bin/python -c pass``: the reference;
* ``assistant --version``: the CLI's start-up alone;
* ``assistant monitor health``: all five checks (database, llm, memory, disk,
  breakers), the colored table;
* ``... --json``, ``... --check llm``, and the four checks named one by one
  (``--check database --check llm --check memory --check disk``).

Peak RSS is pyperf's ``command_max_rss`` of the same runs (the command's own
``ru_maxrss``, through pyperf's small launcher; it agrees with GNU ``time -f %M``
above the launcher's ~12 MiB). Each command first runs once, checked (exit 0,
healthy, the LLM check there); ``--json`` runs a few more times outside pyperf to
give the time the checks themselves take (the report's ``durationMs``). Then one
extra run under cProfile (in a child process: imports, settings, logging, checks,
the metrics flush at exit) shows where the time goes.

Targets: ``monitor health`` < 500 ms wall (median) and peak RSS < 60 MiB (largest).

Run: ``.venv/bin/python benchmarks/bench_health.py [--no-profile] [--checks-runs N]
[pyperf options: --fast, -p N, -n N, -o FILE ...]``. About 1 minute (``--fast``: 30 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    BENCH_DIR,
    PYTHON,
    LoadWatch,
    package_profile,
    print_table,
)
from _perf import (
    BENCH_API_KEY,
    CommandBench,
    Target,
    command_env,
    machine,
    median,
    peak_rss_mib,
    spread,
    summary,
)

TARGET_WALL_S = 0.500
TARGET_RSS_MIB = 60.0
PROFILE_TOP = 15
REFERENCE = "python -c pass"


def commands() -> dict[str, list[str]]:
    health = [str(ASSISTANT), "monitor", "health"]
    return {
        REFERENCE: [str(PYTHON), "-c", "pass"],
        "assistant --version (start-up only)": [str(ASSISTANT), "--version"],
        "monitor health": health,
        "monitor health --json": [*health, "--json"],
        "monitor health --check llm": [*health, "--check", "llm"],
        "monitor health, 4 checks named": [
            *health,
            *(f"--check={name}" for name in ("database", "llm", "memory", "disk")),
        ],
    }


def is_target_row(name: str) -> bool:
    return name.startswith("monitor health")


def check_output(name: str, text: str) -> None:
    """The command must report healthy, having run the checks it was asked for."""
    if not is_target_row(name):
        return
    if "--json" in name:
        report = json.loads(text)
        if report["status"] != "pass" or not any(k.startswith("llm:") for k in report["checks"]):
            raise RuntimeError(f"{name}: unexpected report {text[:800]}")
    elif "HEALTHY" not in text or "llm" not in text:
        raise RuntimeError(f"{name}: unexpected output {text[:800]}")


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument(
        "--checks-runs", type=int, default=5, help="`--json` runs for the checks' durationMs"
    )
    parser.add_argument("--profile-child", type=Path, help=argparse.SUPPRESS)


def main() -> None:
    bench = CommandBench(__doc__, processes=5, values=3, add_arguments=add_arguments)
    args = bench.args
    if args.profile_child is not None:
        profile_child(args.profile_child)
        return
    cmds = commands()
    if bench.is_worker:
        for name, argv in cmds.items():
            bench.command(name, argv, {})
        return

    from assistant.stubllm import StubLLMServer

    watch = LoadWatch()
    tmp = Path(tempfile.mkdtemp(prefix="bench-health-"))
    stub = StubLLMServer(host="127.0.0.1").start()
    try:
        data_dir = tmp / "data"
        env = command_env(
            ASSISTANT_DATA_DIR=str(data_dir), LLM_BASE_URL=stub.url, LLM_API_KEY=BENCH_API_KEY
        )
        bench.check([str(ASSISTANT), "db", "migrate"], env)
        if not (data_dir / "assistant.db").exists():
            raise RuntimeError("assistant db migrate made no assistant.db")
        for name, argv in cmds.items():
            # Checked once; this run also fills the bytecode cache.
            check_output(name, bench.check(argv, env).stdout.decode(errors="replace"))
        for name, argv in cmds.items():
            bench.command(name, argv, env)
        checks_ms = [
            float(json.loads(bench.check(cmds["monitor health --json"], env).stdout)["durationMs"])
            for _ in range(args.checks_runs)
        ]
        profile = None if args.no_profile else run_profile(env, tmp)
        model_requests = sum(1 for r in stub.requests if r.path.rstrip("/").endswith("/models"))
    finally:
        stub.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    results = bench.results
    # Every `monitor health` run does the LLM check: the checked runs, pyperf's
    # warm-up and timed runs, the durationMs runs and the profiled run.
    expected_llm = (
        sum(is_target_row(name) for name in cmds)
        + sum(
            (len(run.warmups) + len(run.values)) * run.get_loops()
            for name, result in results.items()
            if is_target_row(name)
            for run in result.get_runs()
        )
        + args.checks_runs
        + (0 if args.no_profile else 1)
    )
    targets = {}
    for name, result in results.items():
        if is_target_row(name):
            wall, rss = median(result), peak_rss_mib(result) or 0.0
            targets[name] = Target(
                f"< {TARGET_WALL_S * 1000:.0f} ms ({wall * 1000:.0f}) and "
                f"< {TARGET_RSS_MIB:.0f} MiB ({rss:.1f})",
                wall < TARGET_WALL_S and rss < TARGET_RSS_MIB,
            )
    print()
    print(machine(list(results.values())))
    print(
        f"stub LLM at 127.0.0.1: {model_requests} GET /v1/models answered, {expected_llm} expected"
    )
    derived = summary(results, REFERENCE, targets)
    bench.annotate(derived)
    print(
        f"\nthe checks themselves (--json report's durationMs, {args.checks_runs} runs): "
        f"median {spread(checks_ms)} ms"
    )
    if profile is not None:
        print_profile(profile)
    print(f"\n{watch.describe()}")
    met = all(target.met for target in targets.values())
    print(
        f"targets: monitor health < {TARGET_WALL_S * 1000:.0f} ms and peak RSS "
        f"< {TARGET_RSS_MIB:.0f} MiB: {'MET' if met else 'MISSED'}"
    )


def print_profile(profile: Mapping[str, Any]) -> None:
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


if __name__ == "__main__":
    main()
