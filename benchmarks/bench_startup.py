"""Start-up time of the ``assistant`` command, against a bare ``python -c pass``.

Measured as subprocesses with pyperf (``Runner.bench_command``: wall time of
``Popen(command).wait()``, stdout to /dev/null; by default 10 worker processes x
(1 warm-up + 2 values) per command, one command after the other), with
``ASSISTANT_ENV_FILE=none``, a temporary ``ASSISTANT_DATA_DIR`` and nothing else of
the caller's environment but ``PATH``, ``HOME`` and the locale, so no user
configuration is read. Bytecode is cached (``PYTHONDONTWRITEBYTECODE`` unset,
``PYTHONPYCACHEPREFIX=benchmarks/.data/pycache``), as on a user's machine; see
``_perf.py``.

* ``python -c pass`` (the venv's interpreter): the reference;
* ``assistant --help``, ``assistant --version``, ``assistant config check``,
  ``assistant monitor --help``.

Then ``python -X importtime`` shows which modules ``assistant --help`` imports (top
10 by cumulative time, and which heavy third-party packages are among them); the
same for ``assistant monitor logs --file <small log> -n 10``, the command people
run most. pyperf cannot do that part; it is one run each, outside pyperf.

Target: ``assistant --help`` < 150 ms and < 8x bare python (medians).

Run: ``.venv/bin/python benchmarks/bench_startup.py [pyperf options: --fast, -p N,
-n N, -o FILE ...]``. About 40 s (``--fast``: 20 s).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import ASSISTANT, PYTHON, LoadWatch, print_table
from _perf import CommandBench, Target, command_env, machine, median, summary, verdict

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
    bench = CommandBench(__doc__, processes=10, values=2)
    cmds = commands()
    if bench.is_worker:
        for name, argv in cmds.items():
            bench.command(name, argv, {})
        return

    watch = LoadWatch()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = command_env(ASSISTANT_DATA_DIR=str(Path(tmp) / "data"))
        for argv in cmds.values():
            bench.check(argv, env)  # exits 0, and fills the bytecode cache
        for name, argv in cmds.items():
            bench.command(name, argv, env)

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

    results = bench.results
    bare = median(results["python -c pass"])
    help_s = median(results["assistant --help"])
    met = help_s < HELP_TARGET_S and help_s / bare < HELP_TARGET_RATIO
    target = Target(
        f"< {HELP_TARGET_S * 1000:.0f} ms and < {HELP_TARGET_RATIO:.0f}x python -c pass", met
    )
    print()
    print(machine(list(results.values())))
    derived = summary(results, "python -c pass", {"assistant --help": target})
    bench.annotate(derived)
    print(watch.describe())
    print(
        f"\ntarget: assistant --help {target.text}: {verdict(met)} "
        f"({help_s * 1000:.1f} ms, {help_s / bare:.1f}x)"
    )
    print_imports("imports of `assistant --help`", help_imports)
    print_imports("imports of `assistant monitor logs --file F -n 10` (extra)", logs_imports)


if __name__ == "__main__":
    main()
