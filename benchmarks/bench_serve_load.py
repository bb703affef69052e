"""``assistant monitor serve`` under load: 200 concurrent clients on /metrics and /health.

Setup: the installed ``.venv/bin/assistant monitor serve --port P`` (P a free port on
127.0.0.1), started as a subprocess with ``ASSISTANT_ENV_FILE=none``,
``ASSISTANT_DATA_DIR=<temporary directory>`` holding a copy of the 30-day store of
``bench_metrics_query.py`` (100 series, built once and cached under
``benchmarks/.data/``, moved to today and topped up to the current minute; see
``_month_store.py``) and an ``assistant.db`` made by ``assistant db migrate``, and
``LLM_BASE_URL``/``LLM_API_KEY`` pointing at the stub LLM server
(``assistant.stubllm.StubLLMServer``) started inside this process, so ``/health``
really runs its five checks (the LLM one does ``GET /v1/models``) every time its 5 s
cache expires. Every other assistant setting of the calling shell is removed; the
server keeps its defaults (flush, health history, alert rules and retention every
5 s, one thread per connection).

Load generator: asyncio with raw sockets, in this process, one event loop. 200
clients, each its own TCP connection, sending ``GET`` with HTTP/1.1 and reusing the
connection while the server keeps it open (``monitor serve`` does; prometheus_client's
server answers HTTP/1.0 and closes, so there each request opens a new connection, and
its latency includes the connect). Why not 200 threads with ``http.client``: on this
2-CPU machine the client shares the cores with the server, and 200 Python threads
each releasing and retaking one GIL around every socket call would spend much more CPU
per request (the same convoy this benchmark finds in the server) than one event loop
that parses a status line and a ``Content-Length``; the client's own CPU use is
reported so one can see it was not the bottleneck. Each load phase runs a 3 s warm-up (not counted),
then the measured window; every client loop stops at the window's end or after a
fixed number of requests, whichever comes first, and a request times out after 10 s
(counted as an error).

Phases, in the same run:

1. ``monitor serve``, 200 clients alternating ``GET /metrics`` and ``GET /health``,
   30 s: requests/s, errors (any non-200 answer, reset, timeout or short body),
   latency p50/p95/p99/max, overall and per path, and requests/s in the first and
   last 10 s; the server's RSS (``VmRSS`` of ``/proc/<pid>/status``, and its
   ``RssAnon`` part in the JSON) and threads sampled every second, with the mean of
   the first and of the last 10 s; the server's CPU time and its kernel share
   (``/proc/<pid>/stat``); the size of the store's WAL file;
2. ``monitor serve``, 200 clients on ``GET /metrics`` alone, 20 s (the like-for-like
   figure for the ratio);
3. prometheus_client's own ``start_http_server`` in a subprocess, serving a
   ``CollectorRegistry`` rebuilt from our ``/metrics`` text (same families, types,
   label sets, histogram buckets: the same sample lines; ``_created`` series off so
   the line count matches), 200 clients on ``GET /metrics``, 30 s. Its server is
   used as shipped: HTTP/1.0 (a connection per request) and a listen backlog of 5,
   so the kernel's ``ListenOverflows`` count (a full accept queue) is reported too.

Then, in this process, on the same store (the server stopped): ``exposition_text()``,
the body of every ``/metrics`` answer, called for 4 s from 1 thread, from 200 threads
at once (what ``monitor serve``'s thread-per-connection server does under this load),
and from 200 threads taking turns behind one lock: calls/s and user and system CPU
per call. It shows what the server's CPU goes to.

Targets: 0 errors from ``monitor serve``, and a stable server RSS (the mean of the
last 10 s of each phase within 5% of the mean of its first 10 s). The ratio to
prometheus_client (requests/s of phase 2 over phase 3) is reported, with no target.

Run: ``.venv/bin/python benchmarks/bench_serve_load.py [--clients N] [--seconds S]
[--metrics-only-seconds S] [--json]``; diagnostics: ``--no-prometheus`` and
``--server-env NAME=VALUE`` (e.g. ``MALLOC_ARENA_MAX=2``), ``--no-in-process``.
About 2 minutes (the store's top-up takes a few seconds more late in the UTC day).
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
from collections.abc import Mapping, Sequence
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
MIXED = "monitor serve: /metrics + /health"
METRICS_ONLY = "monitor serve: /metrics"
THEIRS = "prometheus_client start_http_server: /metrics"


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
    """SIGTERM, wait, SIGKILL if needed; the exit code (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def proc_status(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, threads) of a process."""
    fields = proc_status_fields(pid)
    return fields.get("VmRSS", 0), fields.get("Threads", 0)


def proc_status_fields(pid: int) -> dict[str, int]:
    """The numeric fields of /proc/<pid>/status (sizes in KiB)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields


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


def file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


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


# -- prometheus_client, for comparison ------------------------------------------------------


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


# -- in process: what one /metrics answer costs, alone and 200 at a time ----------------------


def exposition_concurrency(
    env: Mapping[str, str], threads: int, seconds: float, *, serialized: bool
) -> dict[str, float]:
    """``exposition_text()`` (the body of /metrics) called from ``threads`` threads at once.

    Each thread loops until ``seconds`` have passed (or 100,000 calls in all); with
    ``serialized`` the calls take turns behind one lock. Returns calls/s and the
    process's user and system CPU per call.
    """
    import threading

    from assistant_monitoring.metrics.service import exposition_text
    from assistant_monitoring.settings import load_settings

    settings = load_settings(environ=env).settings
    exposition_text(settings)  # warm-up
    lock = threading.Lock()
    counts = [0] * threads
    limit = 100_000 // threads + 1
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        for _ in range(limit):
            if time.monotonic() >= stop:
                return
            if serialized:
                with lock:
                    exposition_text(settings)
            else:
                exposition_text(settings)
            counts[index] += 1

    before, started = os.times(), time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall, after = time.perf_counter() - started, os.times()
    calls = sum(counts) or 1
    return {
        "threads": threads,
        "serialized": serialized,
        "calls": sum(counts),
        "calls_per_s": sum(counts) / wall,
        "user_ms_per_call": (after.user - before.user) / calls * 1000,
        "sys_ms_per_call": (after.system - before.system) / calls * 1000,
    }


# -- the benchmark ---------------------------------------------------------------------------


class _SkipPrometheus(Exception):
    """--no-prometheus: leave the try block after the monitor serve phases."""


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
    all_latencies = [v for values in stats.latencies.values() for v in values]
    ok = len(all_latencies)
    errors = sum(stats.errors.values())
    window = stats.window_s or 1.0
    rss = stats.rss
    first = [kib for t, kib, _ in rss if t <= RSS_WINDOW_S]
    last = [kib for t, kib, _ in rss if t >= rss[-1][0] - RSS_WINDOW_S] if rss else []
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
        "rss_first_10s_mib": first_mean,
        "rss_last_10s_mib": last_mean,
        "rss_max_mib": max(kib for _, kib, _ in rss) / 1024 if rss else float("nan"),
        "rss_growth_fraction": (last_mean - first_mean) / first_mean if first else float("nan"),
        "threads_max": max(threads for _, _, threads in rss) if rss else 0,
        "wal_samples_mib": [round(size / 2**20, 2) for _, size in stats.wal],
        "wal_max_mib": max(size for _, size in stats.wal) / 2**20 if stats.wal else None,
        "requests_per_second_by_second": per_second(stats.done_at, window),
    }
    spans = row["requests_per_second_by_second"]
    row["req_s_first_10s"] = sum(spans[:10]) / len(spans[:10]) if spans else float("nan")
    row["req_s_last_10s"] = sum(spans[-10:]) / len(spans[-10:]) if spans else float("nan")
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


def check_logs(data_dir: Path, stderr_path: Path) -> dict[str, Any]:
    """Tracebacks and error lines the server left behind."""
    stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    error_lines = 0
    for path in data_dir.rglob("error*.jsonl"):
        error_lines += sum(1 for _ in path.open(errors="replace"))
    return {
        "stderr_tracebacks": stderr.count("Traceback"),
        "stderr_tail": stderr.strip().splitlines()[-5:],
        "error_log_lines": error_lines,
    }


def start_server(env: Mapping[str, str], port: int, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ASSISTANT), "monitor", "serve", "--port", str(port)],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase")
    parser.add_argument(
        "--metrics-only-seconds",
        type=float,
        default=20.0,
        help="measured seconds of the /metrics-only phase on monitor serve (0 skips it)",
    )
    parser.add_argument("--no-top-up", action="store_true", help="store ends at UTC midnight")
    parser.add_argument(
        "--no-prometheus", action="store_true", help="skip the prometheus_client phase"
    )
    parser.add_argument(
        "--no-in-process",
        action="store_true",
        help="skip the in-process exposition_text() check (1 thread, N threads, N with a lock)",
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
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prometheus_child:
        prometheus_child(args.prometheus_child, args.port)
        return
    if args.seconds < 2 * RSS_WINDOW_S:
        parser.error(f"--seconds must be at least {2 * RSS_WINDOW_S:.0f}")

    from _month_store import migrate_database, prepare_month_store

    from assistant.stubllm import StubLLMServer

    watch = LoadWatch()
    ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-load-"))
    data_dir = work / "data"
    stub = StubLLMServer(host=HOST).start()
    server: subprocess.Popen[bytes] | None = None
    prom: subprocess.Popen[bytes] | None = None
    phases: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    in_process: list[dict[str, float]] = []
    try:
        store = prepare_month_store(data_dir, top_up=not args.no_top_up)
        env = server_env(data_dir, stub.url)
        migrate_database(env)
        extra = dict(item.split("=", 1) for item in args.server_env)
        env.update(extra)
        facts["server_env_extra"] = extra

        # monitor serve ------------------------------------------------------------------
        port = free_port()
        stderr_path = work / "serve.stderr"
        with stderr_path.open("wb") as stderr:
            server = start_server(env, port, stderr)
        facts["serve_startup_s"] = wait_until_up(port, "/live", server)
        status, health = http_get(port, "/health")
        if status != 200:
            raise RuntimeError(f"/health answered {status}: {health[:300]!r}")
        facts["health_status"] = json.loads(health)["status"]
        status, ours_body = http_get(port, "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        facts["ours_exposition"] = exposition_facts(ours_body)
        facts["ours_series"] = count_series(ours_body.decode())
        facts["serve_rss_idle_mib"] = proc_status(server.pid)[0] / 1024
        wal = data_dir / "monitoring.db-wal"
        facts["wal_bytes_before_load"] = file_size(wal)
        paths = ["/metrics", "/health"]
        stats = run_phase(port, server.pid, wal, paths, args.clients, args.seconds)
        phases.append(summarize(MIXED, stats, args.clients))
        if args.metrics_only_seconds > 0:
            seconds = args.metrics_only_seconds
            stats = run_phase(port, server.pid, wal, ["/metrics"], args.clients, seconds)
            phases.append(summarize(METRICS_ONLY, stats, args.clients))
        exit_started = time.monotonic()
        facts["serve_exit_code"] = stop_process(server)
        facts["serve_stop_s"] = time.monotonic() - exit_started
        server = None
        facts["serve_logs"] = check_logs(data_dir, stderr_path)
        if not args.no_in_process:
            for threads, serialized in ((1, False), (args.clients, False), (args.clients, True)):
                in_process.append(exposition_concurrency(env, threads, 4.0, serialized=serialized))
        facts["stub_models_requests"] = sum(
            1 for r in stub.requests if r.path.rstrip("/").endswith("/models")
        )

        # prometheus_client ---------------------------------------------------------------
        if args.no_prometheus:
            raise _SkipPrometheus
        from importlib.metadata import version

        facts["prometheus_client"] = version("prometheus_client")  # fails early if missing
        spec_path = work / "registry.json"
        spec_path.write_text(json.dumps(registry_spec(ours_body.decode())))
        prom_port = free_port()
        prom = subprocess.Popen(
            [
                str(PYTHON),
                str(Path(__file__).resolve()),
                "--prometheus-child",
                str(spec_path),
                "--port",
                str(prom_port),
            ],
            env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        wait_until_up(prom_port, "/metrics", prom)
        status, prom_body = http_get(prom_port, "/metrics")
        facts["prometheus_exposition"] = exposition_facts(prom_body)
        facts["prometheus_series"] = count_series(prom_body.decode())
        facts["prometheus_rss_idle_mib"] = proc_status(prom.pid)[0] / 1024
        stats = run_phase(prom_port, prom.pid, None, ["/metrics"], args.clients, args.seconds)
        phases.append(summarize(THEIRS, stats, args.clients))
    except _SkipPrometheus:
        pass
    finally:
        if server is not None:
            facts["serve_exit_code"] = stop_process(server)
        if prom is not None:
            if prom.stdin is not None:
                prom.stdin.close()  # its signal to shut down; SIGTERM if it does not
                with contextlib.suppress(subprocess.TimeoutExpired):
                    prom.wait(5)
            facts["prometheus_exit_code"] = stop_process(prom)
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)

    by_name = {row["phase"]: row for row in phases}
    mixed = by_name.get(MIXED)
    metrics_only = by_name.get(METRICS_ONLY)
    theirs = by_name.get(THEIRS)
    ratios: dict[str, float] = {}
    if theirs and theirs["requests_per_s"]:
        if metrics_only:
            ratios["ours_metrics_only_vs_prometheus"] = (
                metrics_only["requests_per_s"] / theirs["requests_per_s"]
            )
        if mixed:
            ratios["ours_mixed_vs_prometheus"] = mixed["requests_per_s"] / theirs["requests_per_s"]
            ratios["ours_mixed_metrics_per_s_vs_prometheus"] = (
                mixed["per_path_requests"].get("/metrics", 0)
                / mixed["window_s"]
                / theirs["requests_per_s"]
            )
    no_errors = all(row["errors"] == 0 for row in phases if row["phase"].startswith("monitor"))
    ours_stable = all(row["rss_stable"] for row in phases if row["phase"].startswith("monitor"))
    info = machine_info()
    document = {
        "machine": info,
        "load": watch.report(),
        "store": store,
        "facts": facts,
        "phases": phases,
        "in_process_exposition": in_process,
        "ratios": ratios,
        "targets": {"no_errors": no_errors, "serve_rss_stable": ours_stable},
    }
    if args.json:
        dump_json(document)
        return
    report(document, args)


def report(document: Mapping[str, Any], args: argparse.Namespace) -> None:
    facts, store, phases = document["facts"], document["store"], document["phases"]
    print_machine(document["machine"])
    s = store["store"]
    print(
        f"store: {s['series']} series, {s['size_bytes'] / 2**20:.1f} MiB, "
        f"{s['minute_rows']:,} minute / {s['hour_rows']:,} hour / {s['day_rows']:,} day rows "
        f"(template {'built now' if store['template_built_now'] else 'cached'}, shifted "
        f"{store['shifted_days']} day(s), {store['top_up_minute_flushes']} top-up flushes; "
        f"{store['prepare_seconds']} s)"
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
        f"monitor serve: up in {facts['serve_startup_s'] * 1000:.0f} ms, /health "
        f"{facts['health_status']}, idle RSS {facts['serve_rss_idle_mib']:.1f} MiB; stopped by "
        f"SIGTERM in {facts.get('serve_stop_s', float('nan')):.2f} s, exit "
        f"{facts.get('serve_exit_code')}; stub LLM saw {facts.get('stub_models_requests')} "
        "GET /v1/models"
    )
    if facts.get("server_env_extra"):
        print(f"monitor serve's extra environment: {facts['server_env_extra']}")
    print(
        f"load: {args.clients} clients (asyncio, raw sockets, one loop in this process), "
        f"{WARMUP_S:.0f} s warm-up then the measured window\n"
    )
    print_table(
        [
            "phase",
            "s",
            "requests",
            "req/s",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "conns",
            "server CPU",
            "CPU ms/req",
            "sys %",
            "client CPU",
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
        "\nserver RSS (VmRSS) and threads, sampled every second of the measured window; "
        "requests/s in the first and last 10 s; the store's WAL file"
    )
    print_table(
        [
            *("phase", "RSS first 10 s", "last 10 s", "growth", "max MiB", "threads"),
            *("stable", "req/s first 10 s", "last 10 s", "WAL max MiB"),
        ],
        [
            [
                row["phase"],
                f"{row['rss_first_10s_mib']:.1f}",
                f"{row['rss_last_10s_mib']:.1f}",
                f"{row['rss_growth_fraction'] * 100:+.1f}%",
                f"{row['rss_max_mib']:.1f}",
                row["threads_max"],
                "yes" if row["rss_stable"] else "NO",
                f"{row['req_s_first_10s']:.0f}",
                f"{row['req_s_last_10s']:.0f}",
                "-" if row["wal_max_mib"] is None else f"{row['wal_max_mib']:.1f}",
            ]
            for row in phases
        ],
    )
    print(f"WAL before the load: {facts.get('wal_bytes_before_load', 0) / 2**20:.1f} MiB")
    if document["in_process_exposition"]:
        print(
            "\nin process: exposition_text() (the body of /metrics) on the same store, "
            "from N threads at once for 4 s"
        )
        print_table(
            ["threads", "calls/s", "user ms/call", "sys ms/call"],
            [
                [
                    f"{row['threads']}"
                    + (", one lock around each call" if row["serialized"] else ""),
                    f"{row['calls_per_s']:.0f}",
                    f"{row['user_ms_per_call']:.2f}",
                    f"{row['sys_ms_per_call']:.2f}",
                ]
                for row in document["in_process_exposition"]
            ],
        )
    errors = {row["phase"]: row["error_kinds"] for row in phases if row["errors"]}
    if errors:
        print(f"\nerrors: {json.dumps(errors)}")
    logs = facts.get("serve_logs", {})
    print(
        f"\nserver logs: {logs.get('stderr_tracebacks')} tracebacks on stderr, "
        f"{logs.get('error_log_lines')} lines in error.jsonl"
    )
    for name, value in document["ratios"].items():
        print(f"ratio {name}: {value:.2f}x")
    targets = document["targets"]
    print(
        f"\ntarget 0 errors (monitor serve): {verdict(targets['no_errors'])}; target monitor "
        "serve RSS stable "
        f"(last 10 s within {RSS_STABLE_FRACTION:.0%} of first 10 s): "
        f"{verdict(targets['serve_rss_stable'])}"
    )
    load = document["load"]
    print(
        f"other processes used {load['other_cpu_s']:.1f} CPU-s during the {load['wall_s']:.0f} s "
        f"run (an average of {load['other_load']:.2f} cores)"
    )


if __name__ == "__main__":
    main()
