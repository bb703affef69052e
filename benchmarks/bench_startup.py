"""Start-up time of the ``assistant`` command, against a bare ``python -c pass``.

Measured as subprocesses (wall time, median of 20 runs after 3 warm-up runs; the
commands take turns so drift hits them alike), with ASSISTANT_ENV_FILE=none and a
temporary ASSISTANT_DATA_DIR so no user configuration is read:

* ``python -c pass`` (the venv's interpreter): the reference;
* ``assistant --help``, ``assistant --version``, ``assistant config check``,
  ``assistant monitor --help``.

Then ``python -X importtime`` shows which modules ``assistant --help`` imports (top
10 by cumulative time, and which heavy third-party packages are among them); the
same for ``assistant monitor logs --file <small log> -n 10``, the command people
run most.

Target: ``assistant --help`` < 150 ms and < 8x bare python.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--runs N] [--json]``. About 30 s.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    PYTHON,
    LoadWatch,
    dump_json,
    isolated_env,
    machine_info,
    median,
    ms,
    print_machine,
    print_table,
    run_quiet,
    time_call,
    verdict,
)

HELP_TARGET_S = 0.150
HELP_TARGET_RATIO = 8.0
# Third-party packages the CLI means to import only inside the commands that need them.
HEAVY = (
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "loguru",
    "rich",
    "asyncio",
    "anthropic",
    "openai",
    "httpx",
    "aiosqlite",
    "tenacity",
    "importlib.metadata",
)
_IMPORT_LINE = re.compile(r"^import time:\s*(\d+) \|\s*(\d+) \|( *)(\S+)")


def commands() -> dict[str, list[str]]:
    assistant = str(ASSISTANT)
    return {
        "python -c pass": [str(PYTHON), "-c", "pass"],
        "assistant --help": [assistant, "--help"],
        "assistant --version": [assistant, "--version"],
        "assistant config check": [assistant, "config", "check"],
        "assistant monitor --help": [assistant, "monitor", "--help"],
    }


def run_checked(argv: Sequence[str], env: Mapping[str, str]) -> None:
    completed = subprocess.run(list(argv), capture_output=True, env=dict(env), check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {completed.returncode}: {completed.stderr.decode()[-500:]}"
        )


ImportRow = tuple[str, str, int, int]  # module, imported by, self us, cumulative us


def import_times(argv: Sequence[str], env: Mapping[str, str]) -> list[ImportRow]:
    """One row per module imported, from ``python -X importtime``'s report."""
    completed = subprocess.run(
        [str(PYTHON), "-X", "importtime", *argv],
        capture_output=True,
        env=dict(env),
        check=False,
        text=True,
    )
    # The report lists a module after the modules it imported, indented one level
    # more; reading it backwards, a module's importer is the last one seen a level up.
    rows: list[ImportRow] = []
    importers: list[str] = []
    for line in reversed(completed.stderr.splitlines()):
        match = _IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            depth = len(indent) // 2
            del importers[depth:]
            importer = importers[depth - 1] if 0 < depth <= len(importers) else "(top level)"
            importers.append(name)
            rows.append((name, importer, int(own), int(cumulative)))
    rows.reverse()
    return rows


def summarize_imports(rows: list[ImportRow]) -> dict[str, Any]:
    total_us = sum(own for _, _, own, _ in rows)
    top = sorted(rows, key=lambda row: row[3], reverse=True)[:10]
    heavy: dict[str, int] = {}
    for name, _importer, _own, cumulative in rows:
        if name in HEAVY:
            heavy[name] = max(heavy.get(name, 0), cumulative)
    return {
        "modules": len(rows),
        "total_ms": total_us / 1000,
        "top10": [
            {"module": name, "imported_by": by, "self_ms": own / 1000, "cumulative_ms": cum / 1000}
            for name, by, own, cum in top
        ],
        "heavy_cumulative_ms": {name: us / 1000 for name, us in heavy.items()},
    }


def print_imports(title: str, summary: Mapping[str, Any]) -> None:
    print(
        f"\n{title}: {summary['modules']} modules, {summary['total_ms']:.0f} ms of imports "
        "(-X importtime, one run, times inflated by the instrumentation)"
    )
    rows = [
        (
            item["module"],
            item["imported_by"],
            f"{item['cumulative_ms']:.1f}",
            f"{item['self_ms']:.1f}",
        )
        for item in summary["top10"]
    ]
    print_table(["module", "imported by", "cumul. ms", "self ms"], rows)
    heavy = summary["heavy_cumulative_ms"]
    listed = ", ".join(f"{name} {value:.0f} ms" for name, value in heavy.items()) or "none"
    print(f"heavy packages among them: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    watch = LoadWatch()

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = isolated_env(Path(tmp) / "data")
        cmds = commands()
        for argv in cmds.values():
            run_checked(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for round_ in range(args.warmup + args.runs):
            for name, argv in cmds.items():
                seconds = time_call(partial(run_quiet, argv, env))
                if round_ >= args.warmup:
                    times[name].append(seconds)

        log = Path(tmp) / "small.jsonl"
        log.write_text(
            '{"ts":"2026-01-01T00:00:00.000000Z","level":"INFO","msg":"hello",'
            '"logger":"bench","service":"assistant","environment":"bench","version":"0",'
            '"pid":1}\n' * 20
        )
        help_imports = summarize_imports(import_times([str(ASSISTANT), "--help"], env))
        logs_imports = summarize_imports(
            import_times([str(ASSISTANT), "monitor", "logs", "--file", str(log), "-n", "10"], env)
        )

    med = {name: median(values) for name, values in times.items()}
    bare = med["python -c pass"]
    help_s = med["assistant --help"]
    met = help_s < HELP_TARGET_S and help_s / bare < HELP_TARGET_RATIO
    info = machine_info()
    document = {
        "benchmark": "startup",
        "machine": info,
        "load": watch.report(),
        "runs": args.runs,
        "median_ms": {name: value * 1000 for name, value in med.items()},
        "ratio_vs_bare_python": {name: value / bare for name, value in med.items()},
        "all_ms": {name: [v * 1000 for v in values] for name, values in times.items()},
        "imports_help": help_imports,
        "imports_monitor_logs": logs_imports,
        "target": {"help_ms": HELP_TARGET_S * 1000, "help_ratio": HELP_TARGET_RATIO, "met": met},
    }
    if args.json:
        dump_json(document)
        return
    print_machine(info)
    print(f"median of {args.runs} runs after {args.warmup} warm-up runs, wall time\n")
    rows = [
        (name, ms(value), ms(min(times[name])), f"{value / bare:.1f}x")
        for name, value in med.items()
    ]
    print_table(["command", "median ms", "min ms", "vs python -c pass"], rows)
    print(
        f"\ntarget: assistant --help < {HELP_TARGET_S * 1000:.0f} ms and "
        f"< {HELP_TARGET_RATIO:.0f}x bare python: {verdict(met)} "
        f"({ms(help_s)} ms, {help_s / bare:.1f}x)"
    )
    print(watch.describe())
    print_imports("imports of `assistant --help`", help_imports)
    print_imports("imports of `assistant monitor logs --file F -n 10` (extra)", logs_imports)


if __name__ == "__main__":
    main()
