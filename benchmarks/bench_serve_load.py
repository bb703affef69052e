"""``assistant monitor serve`` under load: wrk at 50 connections, then 200 asyncio clients.

Setup: the installed ``.venv/bin/assistant monitor serve --port P`` (starlette on
uvicorn behind ``server/guard.py``; P a free port on 127.0.0.1), started as a
subprocess with ``ASSISTANT_ENV_FILE=none``, ``ASSISTANT_DATA_DIR=<temporary
directory>`` holding a copy of the 30-day store of ``bench_metrics_query.py`` (100
series, built once and cached under ``benchmarks/.data/``, moved to today and topped
up to the current minute; see ``_month_store.py``) with the last 24 h of pipeline
runs in its ``pipeline_runs`` table (``_month_store.seed_runs``, through the real
``RunStore``: ~2,000 runs, ~3% failed, so ``/api/runs`` answers real rows), an
``assistant.db`` made by ``assistant db migrate``, and ``LLM_BASE_URL``/``LLM_API_KEY``
pointing at the stub LLM server (``assistant.stubllm.StubLLMServer``) started inside
this process, so ``/health`` really runs its five checks (the LLM one does ``GET
/v1/models``) every time its 5 s cache expires. Every other assistant setting of the
calling shell is removed; the server keeps its defaults (flush, health history,
alert rules and retention every 5 s; each ``/api/*`` and ``/metrics`` answer computed
in a worker thread at most once a second and shared; 512 connections at most).

Phases, in the same run, one after the other:

0. One request alone: 30 ``GET``s one after the other on one kept-alive connection to
   ``/live`` and ``/api/runs?limit=20``, median and max after the first. A median of
   20 ms or more on an idle server is flagged: it is the delayed-ACK stall of a socket
   without ``TCP_NODELAY`` (the answer's head goes out, its body waits ~40 ms for the
   client's ACK), which caps every kept-alive connection at ~25 requests/s.
1. 50 connections, wrk (``wrk -t2 -c50 -d<S>s --latency URL``, S = ``--wrk-seconds``,
   5 by default; see ``_wrk.py``) on ``monitor serve``'s ``/live``, ``/metrics``,
   ``/api/metrics?period=1h``, ``/api/runs?limit=20`` and
   ``/api/runs?status=failed&limit=5``: requests/s, latency p50/p75/p90/p99 and max,
   socket errors and non-2xx answers, the ratio of each path's requests/s to
   ``/live``'s, and the server's CPU (cores, ms per request) and RSS after each path.
2. 200 clients, this benchmark's own load generator (below) on ``monitor serve``,
   each cycling through ``/metrics``, ``/health``, ``/api/metrics?period=1h`` and
   ``/api/runs?limit=20``, ``--seconds`` (60 by default): requests/s, errors (any
   non-200 answer, reset, timeout or unexpected body), latency p50/p95/p99/max
   overall and per path, requests/s in the first and last 10 s and in the slowest
   second; the server's RSS (``VmRSS`` of ``/proc/<pid>/status``, and its ``RssAnon``
   part in the JSON) and threads sampled every second, with the mean of the first and
   of the last 10 s; its CPU time and kernel share; the size of the store's WAL file.
3. 200 clients on ``GET /metrics`` alone, ``--metrics-only-seconds`` (20): the
   like-for-like figure for the ratio to prometheus_client.
   Then ``monitor serve`` is stopped with SIGTERM (it exits 0 after flushing) and its
   stderr and ``error*.jsonl`` logs are checked for tracebacks and errors.
4. In this process, on the same store (the server stopped): the time of one
   computation of each answer the server shares (``exposition_bytes``, the body of
   ``/metrics``, and the ``/api/metrics`` and ``/api/runs`` documents), the median of
   5: what a worker thread spends once a second per answer under load. (The old
   ``exposition_text()`` from 200 threads at once is gone: it measured the GIL convoy
   of the thread-per-connection server, and the new one never computes an answer
   concurrently with itself.)
5. Protocol: the same application (``MonitorApp`` on the same store, logging set up
   as ``monitor serve`` does, no periodic job) in a child process run by
   ``uvicorn.run`` with uvicorn's pure-Python ``h11`` protocol, then with our
   the guarded httptools protocol (``server/guard.py``) (httptools), same uvicorn options; wrk at 50
   connections on ``/live`` and ``/api/runs?limit=20`` for each (and the probe of
   phase 0): the ratio ours/h11. ``uvicorn.run`` binds its own socket (asyncio then
   sets ``TCP_NODELAY`` on each connection); ``monitor serve`` binds the one it hands
   to uvicorn, so a difference in phase 0 between the two is the socket, not the
   protocol.
6. prometheus_client's own ``start_http_server`` in a subprocess, serving a
   ``CollectorRegistry`` rebuilt from our ``/metrics`` text (same families, types,
   label sets, histogram buckets: the same sample lines; ``_created`` series off so
   the line count matches): wrk on ``/metrics`` with the same settings as phase 1,
   then 200 clients on ``/metrics`` for ``--prometheus-seconds`` (20). Its server is
   used as shipped: HTTP/1.0 (a connection per request) and a listen backlog of 5, so
   the kernel's ``ListenOverflows`` count (a full accept queue) is reported too.

Phases 1 and 5 and the wrk part of 6 need wrk (``/usr/bin/wrk``, Debian package
``wrk``; ``--wrk PATH`` picks another): without it they are skipped, the report says
so, and the rest runs. Nothing is installed.

The 200-client load generator: asyncio with raw sockets, in this process, one event
loop, each client its own TCP connection, sending ``GET`` with HTTP/1.1 and reusing
the connection while the server keeps it open (``monitor serve`` does;
prometheus_client's server answers HTTP/1.0 and closes, so there each request opens a
new connection, and its latency includes the connect). Its own CPU use is reported
so one can see it was not the bottleneck. Each such phase runs a 3 s warm-up (not
counted), then the measured window; a client loop stops at the window's end or after
20,000 requests, and a request times out after 10 s (counted as an error). wrk and
the 200 clients share the 2 CPUs with the server: the figures are for this machine.

Targets (issue 11):

* JSON API at 50 connections (phase 1): ``/api/metrics?period=1h`` and
  ``/api/runs?limit=20`` each serve at least 0.3x the requests/s of ``/live`` in the
  same run, with a p99 latency under 100 ms;
* memory (phase 2): the server's RSS, mean of the last 10 s within 5% of the mean of
  the first 10 s (with ``--seconds`` under 20 each window is half the phase; the
  target is for a 60 s run);
* 0 errors from ``monitor serve`` (phases 1 to 3: wrk's socket errors and non-2xx,
  the clients' errors).

Reported with no target: the ratios of ``monitor serve``'s ``/metrics`` to
prometheus_client's (wrk, and 200 clients), and of our protocol to h11.

Run: ``.venv/bin/python benchmarks/bench_serve_load.py [--json]``: about 3 minutes
(the store's top-up adds a few seconds late in the UTC day; the first run on a
machine builds the store's template, about a minute more). Options: ``--seconds S``
(phase 2, at least 5), ``--wrk-seconds S`` (whole seconds), ``--metrics-only-seconds S`` and
``--prometheus-seconds S`` (0 skips either), ``--clients N``, ``--wrk PATH``;
diagnostics: ``--no-prometheus``, ``--no-protocols``, ``--no-in-process``,
``--no-top-up``, ``--server-env NAME=VALUE`` (e.g. ``MALLOC_ARENA_MAX=2``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _common import (
    ASSISTANT,
    DATA_DIR,
    PYTHON,
    LoadWatch,
    dump_json,
    machine_info,
    print_machine,
    print_table,
    verdict,
)
from _wrk import find_wrk, run_wrk, wrk_version

HOST = "127.0.0.1"
API_KEY = "sk-bench-000000000000"
ROOT = DATA_DIR / "serve-load"
PYCACHE = ROOT / "pycache"
WARMUP_S = 3.0
REQUEST_TIMEOUT_S = 10.0
MAX_REQUESTS_PER_CLIENT = 20_000  # the count bound of each client loop
RSS_WINDOW_S = 10.0
RSS_STABLE_FRACTION = 0.05
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
RUNS_HOURS = 24.0  # pipeline runs seeded into the store
WRK_CONNECTIONS = 50
WRK_THREADS = 2
PROBE_REQUESTS = 30  # sequential requests on one connection (keepalive_probe)
PROBE_STALL_MS = 20.0  # a median this slow on an idle server is a Nagle/delayed-ACK stall
API_MIN_RATIO_TO_LIVE = 0.3
API_MAX_P99_MS = 100.0
LIVE = "/live"
API_METRICS = "/api/metrics?period=1h"
API_RUNS = "/api/runs?limit=20"
API_RUNS_FAILED = "/api/runs?status=failed&limit=5"
WRK_PATHS = (LIVE, "/metrics", API_METRICS, API_RUNS, API_RUNS_FAILED)
TARGET_PATHS = (API_METRICS, API_RUNS)  # the JSON API target (ratio to /live, p99)
PROTOCOL_PATHS = (LIVE, API_RUNS)
PROBE_PATHS = (LIVE, API_RUNS)
PROTOCOLS = ("h11", "ours")
MIXED_PATHS = ("/metrics", "/health", API_METRICS, API_RUNS)
MIXED = "monitor serve: mix"
METRICS_ONLY = "monitor serve: /metrics"
THEIRS = "prometheus_client: /metrics"
SERVE = "monitor serve"
PROMETHEUS = "prometheus_client"


# -- environment and processes ----------------------------------------------------------


def server_env(data_dir: Path, stub_url: str) -> dict[str, str]:
    """The caller's environment without any assistant setting, plus ours; bytecode cached."""
    from assistant_monitoring.settings.model import env_names

    env = dict(os.environ)
    for name in [*env_names(), "ASSISTANT_CONFIG_DIR", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"]:
        env.pop(name, None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        ASSISTANT_ENV_FILE="none",
        ASSISTANT_DATA_DIR=str(data_dir),
        LLM_BASE_URL=stub_url,
        LLM_API_KEY=API_KEY,
        PYTHONPYCACHEPREFIX=str(PYCACHE),
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_ok(port: int, path: str) -> bytes:
    """The body of a 200 answer to ``path`` (raises on any other status)."""
    status, body = http_get(port, path)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
    return body


def keepalive_probe(port: int, path: str, requests: int = PROBE_REQUESTS) -> dict[str, Any]:
    """Sequential ``GET``s on one kept-alive connection: the latency of one request alone.

    A server whose sockets lack ``TCP_NODELAY`` and that writes an answer in two
    pieces (head, then body) waits for the client's delayed ACK before the second:
    ~40 ms a request after the first on the connection, however idle the server is.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    times: list[float] = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    later = sorted(times[1:])  # the first request also pays the connect
    return {
        "path": path,
        "requests": requests,
        "first_ms": times[0],
        "median_ms": later[len(later) // 2],
        "max_ms": later[-1],
        "stalled": later[len(later) // 2] >= PROBE_STALL_MS,
    }


def wait_until_up(port: int, path: str, proc: subprocess.Popen[bytes]) -> float:
    """Poll ``path`` until it answers 200; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer on {path} after {STARTUP_TIMEOUT_S} s")


def stop_process(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, wait, SIGKILL if needed; the exit code (None if it had to be killed).

    ``monitor serve`` exits 0 on SIGTERM; a child left to uvicorn's defaults re-raises
    the signal, -15 here.
    """
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@contextlib.contextmanager
def stopped_at_exit(
    proc: subprocess.Popen[bytes], facts: dict[str, Any], name: str
) -> Iterator[None]:
    """Stop ``proc`` on the way out, whatever happened, and keep its exit code in ``facts``."""
    try:
        yield
    finally:
        if proc.returncode is None:
            facts[f"{name}_exit_code"] = stop_process(proc)


def proc_status_fields(pid: int) -> dict[str, int]:
    """The numeric fields of /proc/<pid>/status (sizes in KiB)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields


def rss_mib(pid: int) -> float:
    return proc_status_fields(pid).get("VmRSS", 0) / 1024


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def error_log_lines(data_dir: Path) -> int:
    """Lines in the error log files under the data dir."""
    lines = 0
    for path in data_dir.rglob("error*.jsonl"):
        with path.open(errors="replace") as handle:
            lines += sum(1 for _ in handle)
    return lines


def check_logs(data_dir: Path, stderr_path: Path) -> dict[str, Any]:
    """Tracebacks and error lines the server left behind."""
    stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    return {
        "stderr_tracebacks": stderr.count("Traceback"),
        "stderr_tail": stderr.strip().splitlines()[-5:],
        "error_log_lines": error_log_lines(data_dir),
    }


# -- wrk --------------------------------------------------------------------------------


def wrk_row(
    wrk: Path, target: str, port: int, pid: int, path: str, seconds: float
) -> dict[str, Any]:
    """wrk on one path, with the server's CPU and RSS over the run."""
    (user0, sys0), t0 = proc_cpu_split(pid), time.monotonic()
    result = run_wrk(
        wrk,
        f"http://{HOST}:{port}{path}",
        seconds=seconds,
        connections=WRK_CONNECTIONS,
        threads=WRK_THREADS,
    )
    (user1, sys1), wall = proc_cpu_split(pid), time.monotonic() - t0
    cpu = (user1 - user0) + (sys1 - sys0)
    requests = result["requests"] or 1
    return {
        "target": target,
        "path": path,
        **result,
        "server_cpu_cores": cpu / wall,
        "server_cpu_ms_per_request": cpu / requests * 1000,
        "server_rss_mib_after": rss_mib(pid),
    }


def add_ratios_to_live(rows: list[dict[str, Any]]) -> None:
    """Each row's requests/s over the /live row's of the same target."""
    live = {row["target"]: row["requests_per_s"] for row in rows if row["path"] == LIVE}
    for row in rows:
        base = live.get(row["target"])
        row["ratio_to_live"] = row["requests_per_s"] / base if base else None


def api_target(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON API target at 50 connections, path by path."""
    paths: dict[str, Any] = {}
    for row in rows:
        if row["target"] != SERVE or row["path"] not in TARGET_PATHS:
            continue
        ratio, p99 = row["ratio_to_live"], row["latency_ms"].get("p99", float("inf"))
        paths[row["path"]] = {
            "ratio_to_live": ratio,
            "p99_ms": p99,
            "met": ratio is not None and ratio >= API_MIN_RATIO_TO_LIVE and p99 < API_MAX_P99_MS,
        }
    return {
        "paths": paths,
        "met": len(paths) == len(TARGET_PATHS) and all(p["met"] for p in paths.values()),
    }


# -- the load generator -----------------------------------------------------------------


@dataclass
class PhaseStats:
    """What the clients saw in the measured window, and the server's resources."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    body_bytes: int = 0
    connects: int = 0
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, KiB, threads)
    wal: list[tuple[float, int]] = field(default_factory=list)  # (t, bytes of monitoring.db-wal)
    rss_anon: list[int] = field(default_factory=list)  # RssAnon, KiB, at each sample
    done_at: list[float] = field(default_factory=list)  # when each counted success finished
    window_s: float = 0.0
    server_cpu_s: float = 0.0
    server_sys_s: float = 0.0
    client_cpu_s: float = 0.0
    stopped_by_count: int = 0
    listen_overflows: int = 0  # TcpExt ListenOverflows during the window (accept queue full)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.x response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    version, status = lines[0].split(b" ", 2)[:2]
    length = -1
    connection = b""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            connection = value.strip().lower()
    if length >= 0:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()  # until the server closes
    keep = length >= 0 and (
        connection == b"keep-alive" if version == b"HTTP/1.0" else connection != b"close"
    )
    return int(status), body, keep


def body_ok(path: str, body: bytes) -> bool:
    if path == "/metrics":
        return body.startswith(b"# HELP")
    if path.startswith("/api/runs"):
        return body.startswith(b'{"runs": [{')  # real rows, not an empty list
    if path.startswith("/api/"):
        return body.startswith(b"{") and not body.startswith(b'{"error"')
    return b'"status"' in body


async def client(
    port: int,
    paths: Sequence[str],
    first: int,
    measure_from: float,
    end: float,
    stats: PhaseStats,
) -> None:
    requests = {
        path: f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
        for path in paths
    }
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    index = first
    try:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            started = time.monotonic()
            if started >= end:
                break
            path = paths[index % len(paths)]
            index += 1
            counted = started >= measure_from
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(HOST, port)
                        stats.connects += 1
                    assert reader is not None
                    writer.write(requests[path])
                    status, body, keep = await read_response(reader)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                if counted:
                    stats.errors[f"{path}: {type(error).__name__}"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            elapsed = time.perf_counter() - t0
            if counted:
                stats.statuses[status] += 1
                stats.body_bytes += len(body)
                if status != 200:
                    stats.errors[f"{path}: HTTP {status}"] += 1
                elif not body_ok(path, body):
                    stats.errors[f"{path}: unexpected body"] += 1
                else:
                    stats.latencies.setdefault(path, []).append(elapsed)
                    stats.done_at.append(time.monotonic() - measure_from)
            if not keep:
                assert writer is not None
                writer.close()
                reader = writer = None
        else:
            stats.stopped_by_count += 1
    finally:
        if writer is not None:
            writer.close()


async def sample_server(
    pid: int, wal: Path | None, measure_from: float, end: float, stats: PhaseStats
) -> None:
    """RSS, threads (and the store's WAL size) every second of the window (ends at ``end``)."""
    next_at = measure_from
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_at:
            fields = proc_status_fields(pid)
            rss, threads = fields.get("VmRSS", 0), fields.get("Threads", 0)
            stats.rss.append((now - measure_from, rss, threads))
            stats.rss_anon.append(fields.get("RssAnon", 0))
            if wal is not None:
                stats.wal.append((now - measure_from, file_size(wal)))
            next_at += 1.0
        await asyncio.sleep(max(0.0, min(next_at, end) - time.monotonic()))
    fields = proc_status_fields(pid)
    stats.rss.append((time.monotonic() - measure_from, fields["VmRSS"], fields["Threads"]))
    stats.rss_anon.append(fields.get("RssAnon", 0))
    if wal is not None:
        stats.wal.append((time.monotonic() - measure_from, file_size(wal)))


async def run_phase_async(
    port: int, pid: int, wal: Path | None, paths: Sequence[str], clients: int, seconds: float
) -> PhaseStats:
    stats = PhaseStats()
    start = time.monotonic()
    measure_from = start + WARMUP_S
    end = measure_from + seconds
    tasks = [client(port, paths, i, measure_from, end, stats) for i in range(clients)]

    async def resources() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        (user0, sys0), own0, t0 = proc_cpu_split(pid), own_cpu_seconds(), time.monotonic()
        overflows = listen_overflows()
        await sample_server(pid, wal, measure_from, end, stats)
        stats.listen_overflows = listen_overflows() - overflows
        user1, sys1 = proc_cpu_split(pid)
        stats.server_cpu_s = (user1 - user0) + (sys1 - sys0)
        stats.server_sys_s = sys1 - sys0
        stats.client_cpu_s = own_cpu_seconds() - own0
        stats.window_s = time.monotonic() - t0

    # Hard bound on the whole phase, whatever happens to a client.
    async with asyncio.timeout(WARMUP_S + seconds + REQUEST_TIMEOUT_S + 10):
        await asyncio.gather(resources(), *tasks)
    return stats


def run_phase(
    port: int, pid: int, wal: Path | None, paths: Sequence[str], clients: int, seconds: float
) -> PhaseStats:
    return asyncio.run(run_phase_async(port, pid, wal, paths, clients, seconds))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_row(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 50) * 1000,
        "p95_ms": percentile(ordered, 95) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
    }


def summarize(name: str, stats: PhaseStats, clients: int) -> dict[str, Any]:
    """One load phase's figures (the RSS windows are 10 s, or half a shorter window)."""
    all_latencies = [v for values in stats.latencies.values() for v in values]
    ok = len(all_latencies)
    errors = sum(stats.errors.values())
    window = stats.window_s or 1.0
    rss = stats.rss
    span = min(RSS_WINDOW_S, window / 2)
    first = [kib for t, kib, _ in rss if t <= span]
    last = [kib for t, kib, _ in rss if t >= rss[-1][0] - span] if rss else []
    first_mean = sum(first) / len(first) / 1024 if first else float("nan")
    last_mean = sum(last) / len(last) / 1024 if last else float("nan")
    row: dict[str, Any] = {
        "phase": name,
        "clients": clients,
        "window_s": round(window, 2),
        "requests_ok": ok,
        "errors": errors,
        "error_kinds": dict(stats.errors),
        "statuses": {str(k): v for k, v in stats.statuses.items()},
        "requests_per_s": ok / window,
        "connections_opened": stats.connects,
        "body_bytes": stats.body_bytes,
        **latency_row(all_latencies),
        "per_path": {path: latency_row(values) for path, values in stats.latencies.items()},
        "per_path_requests": {path: len(values) for path, values in stats.latencies.items()},
        "server_cpu_cores": stats.server_cpu_s / window,
        "server_cpu_ms_per_request": stats.server_cpu_s / ok * 1000 if ok else float("nan"),
        "server_sys_fraction": stats.server_sys_s / stats.server_cpu_s
        if stats.server_cpu_s
        else 0.0,
        "client_cpu_cores": stats.client_cpu_s / window,
        "clients_stopped_by_count": stats.stopped_by_count,
        "listen_overflows": stats.listen_overflows,
        "rss_samples_mib": [round(kib / 1024, 2) for _, kib, _ in rss],
        "rss_anon_samples_mib": [round(kib / 1024, 2) for kib in stats.rss_anon],
        "rss_window_s": span,
        "rss_first_mib": first_mean,
        "rss_last_mib": last_mean,
        "rss_max_mib": max(kib for _, kib, _ in rss) / 1024 if rss else float("nan"),
        "rss_growth_fraction": (last_mean - first_mean) / first_mean if first else float("nan"),
        "threads_max": max(threads for _, _, threads in rss) if rss else 0,
        "wal_samples_mib": [round(size / 2**20, 2) for _, size in stats.wal],
        "wal_max_mib": max(size for _, size in stats.wal) / 2**20 if stats.wal else None,
        "requests_per_second_by_second": per_second(stats.done_at, window),
    }
    seconds = row["requests_per_second_by_second"]
    whole = max(1, int(span))
    row["req_s_first"] = sum(seconds[:whole]) / len(seconds[:whole])
    row["req_s_last"] = sum(seconds[-whole:]) / len(seconds[-whole:])
    row["req_s_slowest_second"] = min(seconds)
    row["rss_stable"] = abs(row["rss_growth_fraction"]) <= RSS_STABLE_FRACTION
    return row


def per_second(done_at: Sequence[float], window: float) -> list[int]:
    """Successful requests finished in each whole second of the window."""
    counts = [0] * max(1, int(window))
    for t in done_at:
        second = int(t)
        if 0 <= second < len(counts):
            counts[second] += 1
    return counts


# -- prometheus_client, for comparison -------------------------------------------------


def registry_spec(text: str) -> list[dict[str, Any]]:
    """Our exposition text as families to rebuild with prometheus_client's own types."""
    from prometheus_client.parser import text_string_to_metric_families

    spec: list[dict[str, Any]] = []
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "gauge", "histogram"):
            raise RuntimeError(f"{family.name}: type {family.type} not handled")
        entry: dict[str, Any] = {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "labelnames": [],
            "buckets": [],
            "series": [],
        }
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            item = series.setdefault(key, {"labels": labels, "value": 0.0, "sum": 0.0, "count": 0})
            if not entry["labelnames"] and labels:
                entry["labelnames"] = list(labels)
            if family.type != "histogram":
                item["value"] = sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                if bound != float("inf") and len(series) == 1:
                    entry["buckets"].append(bound)
            elif sample.name.endswith("_sum"):
                item["sum"] = sample.value
            elif sample.name.endswith("_count"):
                item["count"] = int(sample.value)
        entry["series"] = list(series.values())
        spec.append(entry)
    return spec


def exposition_facts(body: bytes) -> dict[str, int]:
    lines = body.decode().splitlines()
    return {
        "bytes": len(body),
        "families": sum(1 for line in lines if line.startswith("# TYPE ")),
        "sample_lines": sum(1 for line in lines if line and not line.startswith("#")),
    }


def count_series(text: str) -> int:
    """Series as our store counts them: one per label set (a histogram is one series)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0
    for family in text_string_to_metric_families(text):
        keys = {
            tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in family.samples
        }
        total += len(keys)
    return total


def prometheus_child(spec_path: Path, port: int) -> None:
    """Serve the spec's registry with ``start_http_server`` until stdin closes."""
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    for family in json.loads(spec_path.read_text()):
        names = family["labelnames"]
        kind = family["type"]
        if kind == "counter":
            metric: Any = Counter(family["name"], family["help"], names, registry=registry)
        elif kind == "gauge":
            metric = Gauge(family["name"], family["help"], names, registry=registry)
        else:
            metric = Histogram(
                family["name"], family["help"], names, buckets=family["buckets"], registry=registry
            )
        for series in family["series"]:
            child = metric.labels(**series["labels"]) if names else metric
            if kind == "counter":
                child.inc(series["value"])
            elif kind == "gauge":
                child.set(series["value"])
            elif series["count"]:
                child.observe(series["sum"] / series["count"])
    server, thread = prometheus_client.start_http_server(port, addr=HOST, registry=registry)
    print("ready", flush=True)
    try:
        sys.stdin.read()  # the benchmark closes our stdin (or dies) to stop us
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def prometheus_section(
    args: argparse.Namespace,
    wrk: Path | None,
    work: Path,
    ours_body: bytes,
    facts: dict[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """prometheus_client's server on our series: (its wrk row, its 200-client phase)."""
    from importlib.metadata import version

    facts["prometheus_client"] = version("prometheus_client")  # fails early if missing
    spec_path = work / "registry.json"
    spec_path.write_text(json.dumps(registry_spec(ours_body.decode())))
    port = free_port()
    prom = subprocess.Popen(
        child_command("--prometheus-child", str(spec_path), "--port", str(port)),
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    wrk_result = phase = None
    try:
        wait_until_up(port, "/metrics", prom)
        prom_body = get_ok(port, "/metrics")
        facts["prometheus_exposition"] = exposition_facts(prom_body)
        facts["prometheus_series"] = count_series(prom_body.decode())
        facts["prometheus_rss_idle_mib"] = rss_mib(prom.pid)
        if wrk is not None:
            wrk_result = wrk_row(wrk, PROMETHEUS, port, prom.pid, "/metrics", args.wrk_seconds)
        if args.prometheus_seconds > 0:
            stats = run_phase(
                port, prom.pid, None, ["/metrics"], args.clients, args.prometheus_seconds
            )
            phase = summarize(THEIRS, stats, args.clients)
    finally:
        if prom.stdin is not None:
            prom.stdin.close()  # its signal to shut down; SIGTERM if it does not
            with contextlib.suppress(subprocess.TimeoutExpired):
                prom.wait(5)
        facts["prometheus_exit_code"] = stop_process(prom)
    return wrk_result, phase


# -- protocol: the same application on h11 and on our httptools protocol -------------------


def protocol_child(protocol: str, port: int) -> None:
    """Serve ``MonitorApp`` with uvicorn's ``h11`` or our protocol until SIGTERM.

    Settings, logging (files under the data dir, nothing per request) as ``monitor
    serve`` sets them up; no periodic job, no metrics writer: the HTTP stack alone
    differs between the two runs.
    """
    import uvicorn

    from assistant_monitoring.cli.state import current_state
    from assistant_monitoring.server.app import MonitorApp, ServerConfig
    from assistant_monitoring.server.guard import ConnectionBook, guarded_protocol

    state = current_state()
    monitor = MonitorApp(state.start(metrics=False), ServerConfig(host=HOST, port=port))
    try:
        uvicorn.run(
            monitor.asgi,
            host=HOST,
            port=port,
            http=guarded_protocol(ConnectionBook(512)) if protocol == "ours" else "h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=5,
        )
    finally:
        monitor.executor.shutdown(wait=False, cancel_futures=True)
        state.close()


def child_command(*options: str) -> list[str]:
    """This script run as one of its child servers."""
    return [str(PYTHON), str(Path(__file__).resolve()), *options]


def protocol_rows(
    wrk: Path, env: Mapping[str, str], work: Path, seconds: float, facts: dict[str, Any]
) -> list[dict[str, Any]]:
    """wrk on /live and /api/runs, the app on h11 then on ours (one child each)."""
    rows: list[dict[str, Any]] = []
    for protocol in PROTOCOLS:
        port = free_port()
        stderr_path = work / f"protocol-{protocol}.stderr"
        with stderr_path.open("wb") as stderr:
            child = subprocess.Popen(
                child_command("--protocol-child", protocol, "--port", str(port)),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        with stopped_at_exit(child, facts, f"protocol_{protocol}"):
            wait_until_up(port, LIVE, child)
            facts[f"protocol_{protocol}_keepalive_probe"] = [
                keepalive_probe(port, path) for path in PROBE_PATHS
            ]
            for path in PROTOCOL_PATHS:
                rows.append(wrk_row(wrk, protocol, port, child.pid, path, seconds))
        tracebacks = stderr_path.read_text(errors="replace").count("Traceback")
        facts[f"protocol_{protocol}_stderr_tracebacks"] = tracebacks
    return rows


def protocol_ratios(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    rate = {(row["target"], row["path"]): row["requests_per_s"] for row in rows}
    return {
        path: rate[("ours", path)] / rate[("h11", path)]
        for path in PROTOCOL_PATHS
        if rate.get(("h11", path)) and ("ours", path) in rate
    }


# -- in process: what one shared answer costs to compute ------------------------------------


def computation_costs(env: Mapping[str, str], repeats: int = 5) -> list[dict[str, Any]]:
    """Wall time of one computation of each shared answer (median, min, max of ``repeats``)."""
    import statistics

    from assistant_monitoring.metrics.service import exposition_bytes
    from assistant_monitoring.server.api import ENDPOINTS
    from assistant_monitoring.settings import load_settings

    settings = load_settings(environ=env).settings
    cases: list[tuple[str, Callable[[], object]]] = [
        ("/metrics", lambda: exposition_bytes(settings)),
        (API_METRICS, lambda: ENDPOINTS["/api/metrics"](settings, {"period": "1h"})),
        (API_RUNS, lambda: ENDPOINTS["/api/runs"](settings, {"limit": "20"})),
        (
            API_RUNS_FAILED,
            lambda: ENDPOINTS["/api/runs"](settings, {"status": "failed", "limit": "5"}),
        ),
    ]
    rows = []
    for path, compute in cases:
        compute()  # warm-up: imports, the page cache
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            compute()
            times.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "answer": path,
                "median_ms": statistics.median(times),
                "min_ms": min(times),
                "max_ms": max(times),
            }
        )
    return rows


# -- monitor serve ----------------------------------------------------------------------------


def start_server(env: Mapping[str, str], port: int, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ASSISTANT), "monitor", "serve", "--port", str(port)],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def serve_section(
    args: argparse.Namespace,
    wrk: Path | None,
    env: Mapping[str, str],
    data_dir: Path,
    work: Path,
    facts: dict[str, Any],
) -> tuple[bytes, list[dict[str, Any]], list[dict[str, Any]]]:
    """``monitor serve``: its /metrics body, its wrk rows and its 200-client phases."""
    port = free_port()
    stderr_path = work / "serve.stderr"
    with stderr_path.open("wb") as stderr:
        server = start_server(env, port, stderr)
    wrk_rows: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    with stopped_at_exit(server, facts, "serve"):
        facts["serve_startup_s"] = wait_until_up(port, LIVE, server)
        facts["health_status"] = json.loads(get_ok(port, "/health"))["status"]
        ours_body = get_ok(port, "/metrics")
        facts["ours_exposition"] = exposition_facts(ours_body)
        facts["ours_series"] = count_series(ours_body.decode())
        facts["api_metrics_bytes"] = len(get_ok(port, API_METRICS))
        for path in (API_RUNS, API_RUNS_FAILED):
            facts[f"rows {path}"] = len(json.loads(get_ok(port, path))["runs"])
        facts["serve_rss_idle_mib"] = rss_mib(server.pid)
        facts["serve_keepalive_probe"] = [keepalive_probe(port, path) for path in PROBE_PATHS]
        wal = data_dir / "monitoring.db-wal"
        facts["wal_bytes_before_load"] = file_size(wal)
        if wrk is not None:
            for path in WRK_PATHS:
                wrk_rows.append(wrk_row(wrk, SERVE, port, server.pid, path, args.wrk_seconds))
        facts["serve_rss_after_wrk_mib"] = rss_mib(server.pid)
        stats = run_phase(port, server.pid, wal, MIXED_PATHS, args.clients, args.seconds)
        phases.append(summarize(MIXED, stats, args.clients))
        if args.metrics_only_seconds > 0:
            seconds = args.metrics_only_seconds
            stats = run_phase(port, server.pid, wal, ["/metrics"], args.clients, seconds)
            phases.append(summarize(METRICS_ONLY, stats, args.clients))
        facts["serve_rss_end_mib"] = rss_mib(server.pid)
        exit_started = time.monotonic()
        facts["serve_exit_code"] = stop_process(server)
        facts["serve_stop_s"] = time.monotonic() - exit_started
    facts["serve_logs"] = check_logs(data_dir, stderr_path)
    return ours_body, wrk_rows, phases


# -- the benchmark ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200, help="clients of phases 2, 3 and 6")
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="measured seconds of the 200-client mix on monitor serve (the RSS target's run)",
    )
    parser.add_argument(
        "--wrk-seconds", type=float, default=5.0, help="seconds of each wrk run (50 connections)"
    )
    parser.add_argument(
        "--metrics-only-seconds",
        type=float,
        default=20.0,
        help="measured seconds of the 200-client /metrics-only phase on monitor serve (0 skips)",
    )
    parser.add_argument(
        "--prometheus-seconds",
        type=float,
        default=20.0,
        help="measured seconds of the 200-client phase on prometheus_client (0 skips)",
    )
    parser.add_argument("--wrk", help="the wrk binary (default: wrk on PATH)")
    parser.add_argument("--no-top-up", action="store_true", help="store ends at UTC midnight")
    parser.add_argument(
        "--no-prometheus", action="store_true", help="skip prometheus_client altogether"
    )
    parser.add_argument(
        "--no-protocols", action="store_true", help="skip the h11 vs httptools comparison"
    )
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the in-process computation costs"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of monitor serve (diagnostics, e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--prometheus-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--protocol-child", choices=PROTOCOLS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (args.prometheus_child or args.protocol_child):
        if args.seconds < 5:
            parser.error("--seconds must be at least 5")
        if args.wrk_seconds < 1:
            parser.error("--wrk-seconds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.prometheus_child:
        prometheus_child(args.prometheus_child, args.port)
        return
    if args.protocol_child:
        protocol_child(args.protocol_child, args.port)
        return

    from _month_store import migrate_database, prepare_month_store, seed_runs

    from assistant.stubllm import StubLLMServer

    watch = LoadWatch()
    wrk = find_wrk(args.wrk)
    ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-load-"))
    data_dir = work / "data"
    stub = StubLLMServer(host=HOST).start()
    facts: dict[str, Any] = {
        "wrk": {
            "binary": str(wrk) if wrk else None,
            "asked": args.wrk,
            "version": wrk_version(wrk) if wrk else None,
            "command": f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds:.0f}s "
            "--latency URL",
        }
    }
    wrk_rows: list[dict[str, Any]] = []
    protocols: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    costs: list[dict[str, Any]] = []
    try:
        store = prepare_month_store(data_dir, top_up=not args.no_top_up)
        started = time.perf_counter()
        runs: dict[str, float] = dict(seed_runs(data_dir, hours=RUNS_HOURS))
        runs["seconds"] = round(time.perf_counter() - started, 1)
        env = server_env(data_dir, stub.url)
        migrate_database(env)
        extra = dict(item.split("=", 1) for item in args.server_env)
        env.update(extra)
        facts["server_env_extra"] = extra

        ours_body, wrk_rows, phases = serve_section(args, wrk, env, data_dir, work, facts)
        if not args.no_in_process:
            costs = computation_costs(env)
        facts["stub_models_requests"] = sum(
            1 for r in stub.requests if r.path.rstrip("/").endswith("/models")
        )
        if wrk is not None and not args.no_protocols:
            protocols = protocol_rows(wrk, env, work, args.wrk_seconds, facts)
            facts["error_log_lines_after_protocols"] = error_log_lines(data_dir)
        if not args.no_prometheus:
            theirs_wrk, theirs = prometheus_section(args, wrk, work, ours_body, facts)
            if theirs_wrk is not None:
                wrk_rows.append(theirs_wrk)
            if theirs is not None:
                phases.append(theirs)
    finally:
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)

    add_ratios_to_live(wrk_rows)
    add_ratios_to_live(protocols)
    document = {
        "machine": machine_info(),
        "load": watch.report(),
        "store": store,
        "runs_seeded": runs,
        "facts": facts,
        "wrk": wrk_rows,
        "protocols": protocols,
        "phases": phases,
        "computation_costs": costs,
        "ratios": ratios(wrk_rows, protocols, phases),
        "targets": targets(wrk, wrk_rows, phases),
    }
    if args.json:
        dump_json(document)
        return
    report(document, args)


def ratios(
    wrk_rows: Sequence[dict[str, Any]],
    protocols: Sequence[dict[str, Any]],
    phases: Sequence[dict[str, Any]],
) -> dict[str, float]:
    found: dict[str, float] = {}
    rate = {(row["target"], row["path"]): row["requests_per_s"] for row in wrk_rows}
    if rate.get((PROMETHEUS, "/metrics")) and (SERVE, "/metrics") in rate:
        found["wrk_metrics_ours_vs_prometheus"] = (
            rate[(SERVE, "/metrics")] / rate[(PROMETHEUS, "/metrics")]
        )
    by_name = {row["phase"]: row for row in phases}
    theirs, ours = by_name.get(THEIRS), by_name.get(METRICS_ONLY)
    if theirs and ours and theirs["requests_per_s"]:
        found["clients_metrics_ours_vs_prometheus"] = (
            ours["requests_per_s"] / theirs["requests_per_s"]
        )
    for path, value in protocol_ratios(protocols).items():
        found[f"protocol_ours_vs_h11 {path}"] = value
    return found


def targets(
    wrk: Path | None, wrk_rows: Sequence[dict[str, Any]], phases: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    ours = [row for row in phases if row["phase"].startswith(SERVE)]
    mixed = next((row for row in ours if row["phase"] == MIXED), None)
    wrk_errors = sum(row["errors"] for row in wrk_rows if row["target"] == SERVE)
    return {
        "json_api_50_connections": api_target(wrk_rows) if wrk is not None else None,
        "serve_rss_stable": bool(mixed and mixed["rss_stable"]),
        "no_errors": wrk_errors == 0 and all(row["errors"] == 0 for row in ours),
        "serve_wrk_errors": wrk_errors,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def wrk_table(rows: Sequence[dict[str, Any]], first: str) -> None:
    print_table(
        [
            *(first, "path", "requests", "req/s", "x /live", "p50 ms", "p75 ms", "p90 ms"),
            *("p99 ms", "max ms", "errors", "server CPU", "CPU ms/req", "RSS MiB"),
        ],
        [
            [
                row["target"],
                row["path"],
                f"{row['requests']:,}",
                f"{row['requests_per_s']:,.0f}",
                fmt(row.get("ratio_to_live"), 2),
                *(fmt(row["latency_ms"].get(q)) for q in ("p50", "p75", "p90", "p99")),
                fmt(row["latency_ms"].get("max"), 0),
                row["errors"],
                f"{row['server_cpu_cores']:.2f}",
                f"{row['server_cpu_ms_per_request']:.3f}",
                f"{row['server_rss_mib_after']:.1f}",
            ]
            for row in rows
        ],
    )
    failed = {
        f"{row['target']} {row['path']}": {
            **{k: v for k, v in row["socket_errors"].items() if v},
            **({"non_2xx": row["non_2xx"]} if row["non_2xx"] else {}),
        }
        for row in rows
        if row["errors"]
    }
    if failed:
        print(f"wrk errors: {json.dumps(failed)}")


def print_probe(name: str, probes: Sequence[dict[str, Any]]) -> None:
    if not probes:
        return
    parts = [
        f"{p['path']} median {p['median_ms']:.2f} ms, max {p['max_ms']:.1f} ms" for p in probes
    ]
    print(
        f"{name}, {probes[0]['requests']} GETs one after the other on one kept-alive "
        f"connection (after the first): {'; '.join(parts)}"
    )
    if any(p["stalled"] for p in probes):
        print(
            f"  WARNING: {PROBE_STALL_MS:.0f} ms or more per request on an idle server: the "
            "delayed-ACK stall of a socket without TCP_NODELAY (Nagle holds the body back "
            "until the client ACKs the head); it caps each kept-alive connection at ~25 "
            "requests/s"
        )


def report(document: Mapping[str, Any], args: argparse.Namespace) -> None:
    facts, store, phases = document["facts"], document["store"], document["phases"]
    print_machine(document["machine"])
    s, runs = store["store"], document["runs_seeded"]
    print(
        f"store: {s['series']} series, {s['size_bytes'] / 2**20:.1f} MiB, "
        f"{s['minute_rows']:,} minute / {s['hour_rows']:,} hour / {s['day_rows']:,} day rows "
        f"(template {'built now' if store['template_built_now'] else 'cached'}, shifted "
        f"{store['shifted_days']} day(s), {store['top_up_minute_flushes']} top-up flushes; "
        f"{store['prepare_seconds']} s); {runs['runs']:,} pipeline runs in the last "
        f"{RUNS_HOURS:.0f} h ({runs['failed']} failed; {runs['seconds']} s)"
    )
    ours, theirs = facts["ours_exposition"], facts.get("prometheus_exposition", {})
    print(
        f"/metrics of monitor serve: {ours['families']} families, {facts['ours_series']} series, "
        f"{ours['sample_lines']} sample lines, {ours['bytes']:,} bytes; prometheus_client "
        f"{facts.get('prometheus_client', '?')}: {theirs.get('families')} families, "
        f"{facts.get('prometheus_series')} series, {theirs.get('sample_lines')} sample lines, "
        f"{theirs.get('bytes', 0):,} bytes"
    )
    print(
        f"{API_METRICS}: {facts['api_metrics_bytes']:,} bytes; {API_RUNS}: "
        f"{facts[f'rows {API_RUNS}']} rows; {API_RUNS_FAILED}: "
        f"{facts[f'rows {API_RUNS_FAILED}']} rows"
    )
    exit_code = facts.get("serve_exit_code")
    print(
        f"monitor serve: up in {facts['serve_startup_s'] * 1000:.0f} ms, /health "
        f"{facts['health_status']}, idle RSS {facts['serve_rss_idle_mib']:.1f} MiB, after wrk "
        f"{facts['serve_rss_after_wrk_mib']:.1f} MiB, at the end "
        f"{facts.get('serve_rss_end_mib', float('nan')):.1f} MiB; stopped by SIGTERM in "
        f"{facts.get('serve_stop_s', float('nan')):.2f} s, exit {exit_code} "
        f"({'as expected' if exit_code == 0 else 'expected 0'}); stub LLM saw "
        f"{facts.get('stub_models_requests')} GET /v1/models"
    )
    print_probe("monitor serve", facts["serve_keepalive_probe"])
    if facts.get("server_env_extra"):
        print(f"monitor serve's extra environment: {facts['server_env_extra']}")

    wrk_facts = facts["wrk"]
    wrk_rows = document["wrk"]
    print(f"\n{WRK_CONNECTIONS} connections (wrk)")
    if wrk_facts["binary"] is None:
        where = wrk_facts["asked"] or "wrk on PATH"
        print(
            f"SKIPPED: {where} not found (the Debian package wrk installs /usr/bin/wrk); "
            "the 50-connection, protocol and prometheus_client wrk figures are missing"
        )
    else:
        print(
            f"{wrk_facts['command']} ({wrk_facts['version']}), one path after the other; "
            "x /live: req/s over /live's of the same server; server CPU: cores it used; "
            "RSS: after the run"
        )
        wrk_table(wrk_rows, "server")
        target = document["targets"]["json_api_50_connections"]
        parts = [
            f"{path} {p['ratio_to_live']:.2f}x /live, p99 {p['p99_ms']:.1f} ms {verdict(p['met'])}"
            for path, p in target["paths"].items()
        ]
        print(
            f"target JSON API at {WRK_CONNECTIONS} connections (req/s >= "
            f"{API_MIN_RATIO_TO_LIVE}x /live and p99 < {API_MAX_P99_MS:.0f} ms): "
            f"{'; '.join(parts)}: {verdict(target['met'])}"
        )
        ratio = document["ratios"].get("wrk_metrics_ours_vs_prometheus")
        if ratio is not None:
            print(f"monitor serve /metrics over prometheus_client /metrics (wrk): {ratio:.2f}x")

    if document["protocols"]:
        print(
            "\nprotocol: MonitorApp on uvicorn.run with h11 vs guarded httptools "
            f"(httptools), wrk at {WRK_CONNECTIONS} connections, {args.wrk_seconds:.0f} s a path"
        )
        wrk_table(document["protocols"], "protocol")
        parts = [
            f"{path} {value:.2f}x" for path, value in protocol_ratios(document["protocols"]).items()
        ]
        print(f"ours over h11: {', '.join(parts)}")
        for protocol in PROTOCOLS:
            print_probe(f"{protocol} child", facts.get(f"protocol_{protocol}_keepalive_probe", []))
    elif wrk_facts["binary"] is not None and not args.no_protocols:
        print("\nprotocol: no figures")

    print(
        f"\n{args.clients} clients (asyncio, raw sockets, keep-alive, one loop in this "
        f"process), {WARMUP_S:.0f} s warm-up then the measured window; mix: "
        f"{', '.join(MIXED_PATHS)} in turn"
    )
    clients_tables(phases)
    if document["computation_costs"]:
        print(
            "\nin process, the server stopped: one computation of each shared answer "
            "(each is computed at most once a second under load), 5 runs"
        )
        print_table(
            ["answer", "median ms", "min ms", "max ms"],
            [
                [
                    row["answer"],
                    fmt(row["median_ms"], 2),
                    fmt(row["min_ms"], 2),
                    fmt(row["max_ms"], 2),
                ]
                for row in document["computation_costs"]
            ],
        )
    errors = {row["phase"]: row["error_kinds"] for row in phases if row["errors"]}
    if errors:
        print(f"\nerrors: {json.dumps(errors)}")
    logs = facts.get("serve_logs", {})
    print(
        f"\nmonitor serve's logs: {logs.get('stderr_tracebacks')} tracebacks on stderr, "
        f"{logs.get('error_log_lines')} lines in error*.jsonl"
        + (f" (last stderr lines: {logs['stderr_tail']})" if logs.get("stderr_tail") else "")
    )
    if "error_log_lines_after_protocols" in facts:
        print(
            "protocol children: "
            f"{facts.get('protocol_h11_stderr_tracebacks')} + "
            f"{facts.get('protocol_ours_stderr_tracebacks')} tracebacks on stderr; "
            f"{facts['error_log_lines_after_protocols']} lines in error*.jsonl after them"
        )
    for name, value in document["ratios"].items():
        print(f"ratio {name}: {value:.2f}x")
    targets_ = document["targets"]
    mixed = next((row for row in phases if row["phase"] == MIXED), None)
    rss_detail = ""
    if mixed:
        rss_detail = (
            f" ({mixed['rss_first_mib']:.1f} -> {mixed['rss_last_mib']:.1f} MiB, "
            f"{mixed['rss_growth_fraction'] * 100:+.1f}% over {mixed['window_s']:.0f} s"
            + (", shorter than the target's 60 s" if mixed["window_s"] < 59 else "")
            + ")"
        )
    api = targets_["json_api_50_connections"]
    print(
        f"\ntarget JSON API at {WRK_CONNECTIONS} connections: "
        f"{'SKIPPED (no wrk)' if api is None else verdict(api['met'])}; "
        f"target monitor serve RSS stable, {args.clients} clients (last "
        f"{RSS_WINDOW_S:.0f} s within {RSS_STABLE_FRACTION:.0%} of the first): "
        f"{verdict(targets_['serve_rss_stable'])}{rss_detail}; target 0 errors (monitor serve, "
        f"wrk and clients): {verdict(targets_['no_errors'])}"
    )
    load = document["load"]
    print(
        f"other processes used {load['other_cpu_s']:.1f} CPU-s during the {load['wall_s']:.0f} s "
        f"run (an average of {load['other_load']:.2f} cores)"
    )


def clients_tables(phases: Sequence[dict[str, Any]]) -> None:
    print_table(
        [
            *("phase", "s", "requests", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms"),
            *("max ms", "conns", "server CPU", "CPU ms/req", "sys %", "client CPU"),
            "accept drops",
        ],
        [
            [
                row["phase"],
                f"{row['window_s']:.1f}",
                f"{row['requests_ok']:,}",
                f"{row['requests_per_s']:.0f}",
                row["errors"],
                f"{row['p50_ms']:.1f}",
                f"{row['p95_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                f"{row['max_ms']:.0f}",
                f"{row['connections_opened']:,}",
                f"{row['server_cpu_cores']:.2f}",
                f"{row['server_cpu_ms_per_request']:.2f}",
                f"{row['server_sys_fraction'] * 100:.0f}",
                f"{row['client_cpu_cores']:.2f}",
                f"{row['listen_overflows']:,}",
            ]
            for row in phases
        ],
    )
    print(
        "server CPU: cores the server process used (all threads); CPU ms/req: its CPU time "
        "per answered request; sys %: the kernel's share of it; client CPU: this process "
        "(load generator and stub LLM); "
        "accept drops: TcpExt ListenOverflows (a full accept queue) during the window"
    )
    print("\nper path")
    print_table(
        ["phase", "path", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [
            [
                row["phase"],
                path,
                f"{row['per_path_requests'][path]:,}",
                f"{row['per_path_requests'][path] / row['window_s']:.0f}",
                f"{lat['p50_ms']:.1f}",
                f"{lat['p95_ms']:.1f}",
                f"{lat['p99_ms']:.1f}",
                f"{lat['max_ms']:.0f}",
            ]
            for row in phases
            for path, lat in row["per_path"].items()
        ],
    )
    print(
        "\nserver RSS (VmRSS) and threads, sampled every second of the measured window, mean "
        "of its first and last 10 s (half the window if shorter than 20 s); requests/s over "
        "the same spans and in the slowest second; the store's WAL file"
    )
    print_table(
        [
            *("phase", "RSS first", "RSS last", "growth", "max MiB", "threads", "stable"),
            *("req/s first", "req/s last", "slowest s", "WAL max MiB"),
        ],
        [
            [
                row["phase"],
                f"{row['rss_first_mib']:.1f}",
                f"{row['rss_last_mib']:.1f}",
                f"{row['rss_growth_fraction'] * 100:+.1f}%",
                f"{row['rss_max_mib']:.1f}",
                row["threads_max"],
                "yes" if row["rss_stable"] else "NO",
                f"{row['req_s_first']:.0f}",
                f"{row['req_s_last']:.0f}",
                f"{row['req_s_slowest_second']:,}",
                "-" if row["wal_max_mib"] is None else f"{row['wal_max_mib']:.1f}",
            ]
            for row in phases
        ],
    )


if __name__ == "__main__":
    main()
