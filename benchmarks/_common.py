"""Helpers shared by the benchmark scripts: machine facts, timing, tables, environments.

Not a benchmark itself. The scripts import it as ``_common`` (they run as
``python benchmarks/<name>.py``, so this folder is first on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
VENV_BIN = Path(sys.executable).parent
PYTHON = Path(sys.executable)
ASSISTANT = VENV_BIN / "assistant"


def machine_info() -> dict[str, Any]:
    """CPU count, CPU model, memory, Python version and the date, for the report."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / (1024 * 1024), 1)
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_machine(info: Mapping[str, Any]) -> None:
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}, {info['date']}"
    )


def isolated_env(data_dir: Path) -> dict[str, str]:
    """The environment for CLI runs: no .env file read, data in a throw-away directory."""
    env = dict(os.environ)
    env["ASSISTANT_ENV_FILE"] = "none"
    env["ASSISTANT_DATA_DIR"] = str(data_dir)
    env.pop("ASSISTANT_ENV", None)
    env.pop("ASSISTANT_CONFIG_DIR", None)
    return env


def time_call(func: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def time_repeats(func: Callable[[], object], *, repeats: int, warmup: int = 1) -> list[float]:
    """Wall times (seconds) of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        func()
    return [time_call(func) for _ in range(repeats)]


def run_quiet(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run a command with stdout and stderr discarded; return its exit code."""
    return subprocess.run(
        list(argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        check=False,
    ).returncode


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i])
            for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def dump_json(document: Mapping[str, Any]) -> None:
    print(json.dumps(document, indent=2))
