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
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
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


def isolated_env(data_dir: Path) -> dict[str, str]:
    """The environment for CLI runs: no .env file read, data in a throw-away directory."""
    env = dict(os.environ)
    env["ASSISTANT_ENV_FILE"] = "none"
    env["ASSISTANT_DATA_DIR"] = str(data_dir)
    env.pop("ASSISTANT_ENV", None)
    env.pop("ASSISTANT_CONFIG_DIR", None)
    return env


BENCH_API_KEY = "sk-bench-000000000000"


def stub_env(data_dir: Path, stub_url: str, **extra: str) -> dict[str, str]:
    """The caller's environment without any assistant setting (nor an OTLP export or
    TRACEPARENT of the shell), plus a throw-away data dir and the stub LLM at
    ``stub_url``; ``extra`` on top."""
    from assistant_monitoring.settings.model import env_names

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OTEL_") and name != "TRACEPARENT"
    }
    for name in [*env_names(), "ASSISTANT_CONFIG_DIR", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"]:
        env.pop(name, None)
    env.update(
        ASSISTANT_ENV_FILE="none",
        ASSISTANT_DATA_DIR=str(data_dir),
        LLM_BASE_URL=stub_url,
        LLM_API_KEY=BENCH_API_KEY,
        **extra,
    )
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


@dataclass(frozen=True)
class ChildRun:
    """One finished command: wall time, CPU time and peak RSS (see ``run_with_rusage``)."""

    wall_s: float
    max_rss_kib: int
    cpu_s: float
    exit_code: int
    stdout: bytes
    rss_exact: bool = False  # measured by GNU time, not wait4's upper bound


GNU_TIME = Path("/usr/bin/time")


def run_with_rusage(
    argv: Sequence[str], env: Mapping[str, str] | None = None, *, peak_rss: bool = False
) -> ChildRun:
    """Run a command to completion (stdout captured, stderr discarded).

    The CPU time is the child's own, from ``os.wait4``. The wall time covers fork,
    exec, the run, reading its output and reaping it.

    Peak RSS: by default ``wait4``'s ``ru_maxrss``, which is only an upper bound. On
    Linux a child's high-water mark includes the memory of the process it was forked
    (or vforked) from, up to its ``exec``, so from a 200 MiB benchmark process even
    ``python -c pass`` "peaks" at 200 MiB (``getrusage(RUSAGE_CHILDREN)`` has the same
    flaw, and keeps the maximum over every child). ``peak_rss=True`` runs the command
    under GNU ``time -f %M`` instead and reports the command's own peak
    (``rss_exact``). ``time`` is a small C program, and adds its own fork and exec
    (0 to 4 ms) to the wall time: time and measure memory in separate runs.
    """
    report = ""
    command = list(argv)
    if peak_rss:
        if not GNU_TIME.exists():
            raise RuntimeError(f"{GNU_TIME} (GNU time) is needed to measure peak RSS")
        handle, report = tempfile.mkstemp(prefix="bench-rss-")
        os.close(handle)
        command = [str(GNU_TIME), "-f", "%M", "-o", report, *command]
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        # GNU time writes "Command exited with non-zero status N" first when it did.
        rss = int(Path(report).read_text().split()[-1]) if peak_rss else usage.ru_maxrss
    finally:
        if report:
            os.unlink(report)
    return ChildRun(
        wall_s=wall,
        max_rss_kib=rss,  # KiB
        cpu_s=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
        stdout=out,
        rss_exact=peak_rss,
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
