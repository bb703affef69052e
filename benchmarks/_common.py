"""Helpers shared by the benchmark scripts: machine facts, tables, paths, load, profiles.

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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
VENV_BIN = Path(sys.executable).parent
PYTHON = Path(sys.executable)
ASSISTANT = VENV_BIN / "assistant"


def git_commit() -> str:
    """``git describe --always --dirty`` of the repository ("unknown" without git)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


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
    commit = git_commit()
    return {
        "commit": commit or "unknown",
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_machine(info: Mapping[str, Any]) -> None:
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}, {info['date']}, commit {info.get('commit', 'unknown')}"
    )


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
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
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


class LoadWatch:
    """CPU time other processes used while a benchmark ran (this is a shared machine).

    Compares the machine's busy time (``/proc/stat``) with this process's and its
    children's CPU time; what is left was spent by someone else and slows the
    figures down (on 2 cores, one busy neighbour is enough to show).
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        import resource

        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        ticks = os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return (sum(fields[:8]) - idle) / ticks, ours, time.monotonic()

    def report(self) -> dict[str, float]:
        busy0, ours0, t0 = self._start
        busy1, ours1, t1 = self._sample()
        others = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        wall = t1 - t0
        return {
            "wall_s": round(wall, 1),
            "other_cpu_s": round(others, 1),
            "other_load": round(others / wall, 2) if wall else 0.0,
        }

    def describe(self) -> str:
        load = self.report()
        return (
            f"other processes used {load['other_cpu_s']:.1f} CPU-s during the "
            f"{load['wall_s']:.0f} s run (an average of {load['other_load']:.2f} cores)"
        )


PACKAGE_DIRS = (REPO_ROOT / "assistant", REPO_ROOT / "assistant_monitoring")


def package_profile(stats: Any) -> dict[str, dict[str, float]]:
    """The functions of ``assistant`` and ``assistant_monitoring`` in a ``pstats.Stats``.

    Keyed ``path:line(function)`` (path relative to the repository); values are the
    number of calls and the own (``tottime_s``) and cumulative (``cumtime_s``) seconds.
    """
    roots = tuple(str(path) + os.sep for path in PACKAGE_DIRS)
    rows: dict[str, dict[str, float]] = {}
    for (filename, line, function), (_cc, calls, own, cumulative, _callers) in stats.stats.items():
        if not filename.startswith(roots):
            continue
        name = f"{Path(filename).relative_to(REPO_ROOT)}:{line}({function})"
        rows[name] = {"calls": calls, "tottime_s": own, "cumtime_s": cumulative}
    return rows
