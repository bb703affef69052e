"""Run wrk (the HTTP load generator, Debian package ``wrk``) and read its report.

Not a benchmark itself; ``bench_serve_load.py`` uses it. wrk is a C program with one
event loop per thread, so on this 2-CPU machine it takes much less CPU per request
than any Python client would, and the server gets most of the machine. It is run as
``wrk -t<T> -c<C> -d<S>s --latency URL``: ``--latency`` adds the 50/75/90/99%
lines, and the report is parsed from its text (wrk's units: us, ms, s, m, h).
wrk counts a request with no answer within its default 2 s as a ``timeout`` socket
error, and any answer outside 2xx/3xx as ``Non-2xx or 3xx responses``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["find_wrk", "parse_wrk", "run_wrk", "wrk_version"]

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # to milliseconds
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_PERCENTILE = re.compile(rf"^\s*(50|75|90|99)(?:\.0+)?%\s+{_TIME}\s*$", re.MULTILINE)
_THREAD_LATENCY = re.compile(rf"^\s*Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)


def find_wrk(given: str | None = None) -> Path | None:
    """The wrk binary: ``given`` if it exists, else ``wrk`` on PATH; None if neither."""
    if given:
        path = Path(given)
        return path if path.is_file() else None
    found = shutil.which("wrk")
    return Path(found) if found else None


def wrk_version(wrk: Path) -> str:
    """wrk's first line of ``--version`` (it exits 1 after printing it)."""
    done = subprocess.run([str(wrk), "--version"], capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    """requests, requests/s, latency (ms: avg, max, p50/p75/p90/p99) and errors of a report."""
    rate = _RATE.search(text)
    requests = _REQUESTS.search(text)
    if rate is None or requests is None:
        raise ValueError(f"not a wrk report: {text.strip()[-300:]!r}")
    latency: dict[str, float] = {}
    thread = _THREAD_LATENCY.search(text)
    if thread is not None:
        latency["avg"] = _ms(thread.group(1), thread.group(2))
        latency["stdev"] = _ms(thread.group(3), thread.group(4))
        latency["max"] = _ms(thread.group(5), thread.group(6))
    for match in _PERCENTILE.finditer(text):
        latency[f"p{match.group(1)}"] = _ms(match.group(2), match.group(3))
    socket = _SOCKET.search(text)
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if socket is not None:
        socket_errors = dict(zip(socket_errors, map(int, socket.groups()), strict=True))
    non_2xx = _NON_2XX.search(text)
    non_2xx_count = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "requests": int(requests.group(1)),
        "duration_s": _ms(requests.group(2), requests.group(3)) / 1000,
        "requests_per_s": float(rate.group(1)),
        "latency_ms": latency,
        "socket_errors": socket_errors,
        "non_2xx": non_2xx_count,
        "errors": sum(socket_errors.values()) + non_2xx_count,
    }


def run_wrk(
    wrk: Path, url: str, *, seconds: float, connections: int = 50, threads: int = 2
) -> dict[str, Any]:
    """One wrk run on ``url``; its parsed report (see :func:`parse_wrk`) and its command."""
    command = [
        str(wrk),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return {"command": " ".join(command), **parse_wrk(done.stdout)}
