"""ASGI servers side by side (issue 21): uvicorn, granian, hypercorn and ``monitor serve``.

The candidates, each serving ``monitor serve``'s application on 127.0.0.1, one after
the other in the same run, each in its own process group started under
``ulimit -n 1024`` (soft and hard: ``resource.setrlimit`` in ``preexec_fn``):

* ``uvicorn``: ``uvicorn.run`` with ``http="httptools"`` and its public options
  (``timeout_keep_alive`` 5, ``limit_concurrency`` 512, ``backlog`` 1024);
* ``granian``: the ``Granian`` server, ``interface="asgi"``, HTTP/1, ``workers=1``,
  ``backlog`` 1024, ``backpressure`` 512, ``HTTP1Settings(header_read_timeout=10000,
  max_buffer_size=65536)``;
* ``hypercorn``: ``hypercorn.asyncio.serve`` (h11) with ``keep_alive_timeout`` 5,
  ``read_timeout`` 10, ``h11_max_incomplete_size`` 65536, ``backlog`` 1024;
* ``ours``: the installed ``assistant monitor serve --port P`` as it is when the
  benchmark runs (its own defaults: MONITOR_MAX_CONNECTIONS 512 and its guard).

The first three serve the same ``MonitorApp(settings, ServerConfig(...)).asgi``,
built by ``_asgi_entry.py`` from the same environment the CLI gets (without the
metrics runtime and the periodic job that ``monitor serve`` runs beside the app).
The numbers are the ones ``monitor serve`` uses where the server has a setting for
them (``_asgi_entry.SETTINGS``). The data: a copy of the 30-day store with 24 h of
pipeline runs (``_month_store``, as ``bench_serve_load.py``), ``assistant.db``
migrated, the stub LLM server on 127.0.0.1 for the health checks.

Per candidate, in this order:

0. Probe: one request whose head carries a 128 KiB header (above every 64 KiB limit
   set): the answer (status, close or reset).
1. wrk (``_wrk.py``), 50 connections, 2 threads, ``--wrk-seconds`` (10) on ``/live``,
   ``/metrics`` and ``/api/runs?limit=20``: requests/s, p50, p99, errors (socket
   errors and non-2xx), the server's CPU (all processes of its group) and RSS.
2. Three attacks of ``--attack-seconds`` (20) each, from a child process of this
   script, while this process opens a fresh connection to ``/live`` every 100 ms (each
   poll ``GET /live`` with ``Connection: close``, its latency the time to the
   answer's head, a failure anything but a 200 head within 5 s), and samples the
   server's RSS, sockets and CPU every 0.5 s; then 3 s to settle and one more poll:

   i.   slowloris: 600 sockets, each sending a never-ending request head one byte a
        second (a request line, then ``X-Pad: y`` headers), reconnecting 0.1 s after
        the server closes it (or answers); how long the server held each;
   ii.  slow readers: 20 connections (receive buffer 4 KiB) that send
        ``GET /api/runs?limit=1000`` (the largest answer) and read one byte a second;
        whether the server ever closes them (their server-side TCP state in
        ``/proc/net/tcp`` each second: FIN_WAIT when it closed, gone when it reset),
        and the server's RSS. What the server's ends still hold in their kernel send
        queues at the end is reported too: an answer that fits there is "sent" as far
        as the server knows, and only a server that resets the connection frees it;
   iii. flood: 2,000 connections that connect and send nothing, each reconnecting
        0.1 s after the server closes it (a connect times out after 3 s); the lines
        the server wrote to stdout and stderr while it lasted (granian logs to stdout)
        and the lines added to the ``error*.jsonl`` logs under the data dir.

Every load is bounded: wrk by its duration, each attack by its seconds (the child
stops by itself, and is killed past its time plus 30 s), each connect and poll by a
timeout. The servers are stopped at the end of their turn (SIGTERM to the process
group, SIGKILL after 10 s). One measurement of each, sequentially: on 2 shared cores
the figures are for this machine (``other_load`` says how busy it was).

Run: ``.venv/bin/python benchmarks/bench_servers.py [--json PATH]``, about 8 minutes.
Options: ``--only NAME`` (repeatable), ``--wrk-seconds S``, ``--attack-seconds S``,
``--wrk PATH``, ``--no-top-up``. wrk comes from ``apt-get install wrk``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from _asgi_entry import SETTINGS
from _common import (
    ASSISTANT,
    BENCH_DIR,
    PYTHON,
    LoadWatch,
    machine_info,
    print_machine,
    print_table,
)
from _wrk import find_wrk, run_wrk, wrk_version
from bench_serve_load import (
    HOST,
    LIVE,
    RUNS_HOURS,
    error_log_lines,
    free_port,
    http_get,
    proc_cpu_split,
    proc_status_fields,
    server_env,
    wait_until_up,
)

CANDIDATES = ("uvicorn", "granian", "hypercorn", "ours")
FILE_LIMIT = 1024  # ulimit -n of every server
WRK_CONNECTIONS = 50
WRK_THREADS = 2
WRK_PATHS = (LIVE, "/metrics", "/api/runs?limit=20")
BIG_ANSWER = "/api/runs?limit=1000"  # the largest answer the API gives
OVERSIZE_HEADER_BYTES = 128 * 1024
POLL_INTERVAL_S = 0.1
POLL_TIMEOUT_S = 5.0
SAMPLE_INTERVAL_S = 0.5
SETTLE_S = 3.0  # the least pause after an attack
RECOVERY_LIMIT_S = 30.0  # polls of /live after an attack, until one answers
CONNECT_TIMEOUT_S = 3.0
RECONNECT_DELAY_S = 0.1
SLOWLORIS_SOCKETS = 600
SLOW_READERS = 20
SLOW_READER_RCVBUF = 4096
FLOOD_SOCKETS = 2000
ATTACKS = ("slowloris", "slow readers", "flood")
STOP_TIMEOUT_S = 10.0
CHILD_GRACE_S = 30.0  # an attack child still running this long after its end is killed
KEPT_LINE_KINDS = 12  # distinct server output lines kept for the report

# /proc/net/tcp states
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


# -- the servers --------------------------------------------------------------------------


def limit_files() -> None:
    """``ulimit -n 1024`` in the child, soft and hard (``preexec_fn``)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


def server_command(name: str, port: int) -> list[str]:
    if name == "ours":
        return [str(ASSISTANT), "monitor", "serve", "--port", str(port)]
    return [str(PYTHON), str(BENCH_DIR / "_asgi_entry.py"), name, "--port", str(port)]


class OutputCounter:
    """Counts a server's output lines (stdout and stderr), keeping a few of each kind."""

    def __init__(self) -> None:
        self.lines = 0
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def pump(self, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            kind = re.sub(r"\d+", "#", raw.decode("utf-8", "replace").strip())[:160]
            with self._lock:
                self.lines += 1
                if kind in self.kinds or len(self.kinds) < 200:
                    self.kinds[kind] += 1

    def total(self) -> int:
        with self._lock:
            return self.lines

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.kinds)


class ServerProcess:
    """A candidate in its own process group, its output counted by two threads."""

    def __init__(self, name: str, port: int, env: Mapping[str, str]) -> None:
        self.name = name
        self.port = port
        self.output = OutputCounter()
        self.proc = subprocess.Popen(
            server_command(name, port),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # setrlimit alone runs between fork and exec (no lock, no import).
            preexec_fn=limit_files,  # noqa: PLW1509
            start_new_session=True,
        )
        self.pgid = self.proc.pid
        self._threads = [
            threading.Thread(target=self.output.pump, args=(pipe,), daemon=True)
            for pipe in (self.proc.stdout, self.proc.stderr)
            if pipe is not None
        ]
        for thread in self._threads:
            thread.start()

    def pids(self) -> list[int]:
        """The processes of its group (granian: the supervisor and its worker)."""
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == self.pgid:
                found.append(int(entry.name))
        return found

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += proc_status_fields(pid).get("VmRSS", 0)
        return total / 1024

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += sum(proc_cpu_split(pid))
        return total

    def sockets(self) -> int:
        """Sockets open in its processes (the listening one included)."""
        count = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        count += os.readlink(fd.path).startswith("socket:")
        return count

    def stop(self) -> int | None:
        """SIGTERM to the group, SIGKILL after STOP_TIMEOUT_S; its exit code (None: killed)."""
        code: int | None = None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)
            try:
                code = self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                code = None
        else:
            code = self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)  # whatever is left of the group
        self.proc.wait()
        for thread in self._threads:
            thread.join(5)
        return code


class Busy:
    """The machine's busy CPU time split: the server's (its process group), this
    process's and its reaped children's (wrk, the attackers), and other processes'."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return busy, ours, self.server.cpu_s(), time.monotonic()

    def since(self) -> dict[str, float]:
        """Seconds since the start, and the cores each part used on average."""
        busy0, ours0, server0, t0 = self._start
        busy1, ours1, server1, t1 = self._sample()
        wall = max(t1 - t0, 1e-9)
        server = server1 - server0
        others = max(0.0, (busy1 - busy0) - (ours1 - ours0) - server)
        return {"wall_s": wall, "server_cores": server / wall, "other_cores": others / wall}


# -- small probes ------------------------------------------------------------------------


def status_of(data: bytes) -> str:
    """``HTTP 408`` from an answer's first bytes, else a short description."""
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return f"HTTP {match.group(1).decode()}" if match else f"other bytes {data[:16]!r}"


def oversize_head(port: int) -> str:
    """What the server does with a head carrying a 128 KiB header."""
    head = (
        b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        + b"a" * OVERSIZE_HEADER_BYTES
        + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((HOST, port), timeout=POLL_TIMEOUT_S) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(head)
        try:
            data = sock.recv(256)
        except TimeoutError:
            return f"no answer in {POLL_TIMEOUT_S:.0f} s"
        except OSError as error:
            return f"reset ({type(error).__name__})"
    return status_of(data) if data else "closed, no answer"


def wrk_rows(wrk: Path, server: ServerProcess, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for path in WRK_PATHS:
        busy = Busy(server)
        result = run_wrk(
            wrk,
            f"http://{HOST}:{server.port}{path}",
            seconds=seconds,
            connections=WRK_CONNECTIONS,
            threads=WRK_THREADS,
        )
        usage = busy.since()
        rows.append(
            {
                "path": path,
                **result,
                "server_cpu_cores": usage["server_cores"],
                "other_cores": usage["other_cores"],
                "server_rss_mib_after": server.rss_mib(),
            }
        )
    return rows


# -- the /live poller and the server sampler (this process) -----------------------------------


async def poll_live(port: int) -> tuple[float | None, str | None]:
    """One ``GET /live`` on a fresh connection: (seconds to the answer's head, None) or
    (None, why it failed)."""
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(POLL_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        return None, "timeout"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        return None, type(error).__name__
    finally:
        if writer is not None:
            writer.close()
    status = status_of(head)
    if status != "HTTP 200":
        return None, status
    return time.perf_counter() - started, None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None when there is no value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Observed:
    """What this process saw of the server during an attack."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    rss_mib: list[float] = field(default_factory=list)
    sockets: list[int] = field(default_factory=list)


async def watch(server: ServerProcess, stop: asyncio.Event, seen: Observed) -> None:
    """Poll /live every POLL_INTERVAL_S and sample the server until ``stop``."""

    async def one_poll() -> None:
        latency, failure = await poll_live(server.port)
        if failure is None and latency is not None:
            seen.latencies.append(latency)
        else:
            seen.failures[failure or "?"] += 1

    async def sample() -> None:
        while not stop.is_set():
            seen.rss_mib.append(server.rss_mib())
            seen.sockets.append(server.sockets())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL_S)

    sampler = asyncio.create_task(sample())
    polls: list[asyncio.Task[None]] = []
    next_at = time.monotonic()
    while not stop.is_set():
        polls.append(asyncio.create_task(one_poll()))
        next_at += POLL_INTERVAL_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    await asyncio.gather(sampler, *polls)


async def run_attack(
    kind: str, server: ServerProcess, seconds: float, data_dir: Path, work: Path
) -> dict[str, Any]:
    """One attack from a child process, the /live poller and the sampler beside it."""
    lines0, kinds0 = server.output.total(), server.output.snapshot()
    errors0, busy = error_log_lines(data_dir), Busy(server)
    seen = Observed()
    stop = asyncio.Event()
    stderr_path = work / f"attack-{server.name}-{kind.replace(' ', '-')}.stderr"
    with stderr_path.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            str(PYTHON),
            str(Path(__file__).resolve()),
            "--attack",
            kind,
            "--port",
            str(server.port),
            "--attack-seconds",
            str(seconds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    watcher: asyncio.Task[None] | None = None
    report: dict[str, Any] = {}
    try:
        async with asyncio.timeout(seconds + CHILD_GRACE_S):
            await child.stdout.readline()  # "ready": its sockets are on their way
            watcher = asyncio.create_task(watch(server, stop, seen))
            out = await child.stdout.read()
            await child.wait()
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (TimeoutError, ValueError, IndexError) as error:
        report = {"error": f"attack child: {type(error).__name__}: {error}"}
    finally:
        stop.set()
        if child.returncode is None:
            child.kill()
            await child.wait()
        if watcher is not None:
            await watcher
    lines_during = server.output.total() - lines0
    kinds = server.output.snapshot()
    kinds.subtract(kinds0)
    errors_during = error_log_lines(data_dir) - errors0
    usage = busy.since()
    ended = time.monotonic()
    recovered: float | None = None
    while time.monotonic() - ended < RECOVERY_LIMIT_S:
        _, failure = await poll_live(server.port)
        if failure is None:
            recovered = time.monotonic() - ended
            break
        await asyncio.sleep(SAMPLE_INTERVAL_S)
    await asyncio.sleep(max(0.0, ended + SETTLE_S - time.monotonic()))
    polls = len(seen.latencies) + sum(seen.failures.values())
    return {
        "attack": kind,
        "seconds": round(usage["wall_s"], 1),
        "polls": polls,
        "poll_failures": sum(seen.failures.values()),
        "poll_failure_kinds": dict(seen.failures),
        "poll_p50_ms": ms_or_none(percentile(seen.latencies, 50)),
        "poll_p99_ms": ms_or_none(percentile(seen.latencies, 99)),
        "poll_max_ms": ms_or_none(max(seen.latencies) if seen.latencies else None),
        "server_rss_mib_max": max(seen.rss_mib, default=0.0),
        "server_rss_mib_last": seen.rss_mib[-1] if seen.rss_mib else None,
        "server_sockets_max": max(seen.sockets, default=0),
        "server_cpu_cores": usage["server_cores"],
        "other_cores": usage["other_cores"],
        "server_output_lines": lines_during,
        "server_output_lines_after": server.output.total() - lines0 - lines_during,
        "server_output_kinds": dict(
            Counter({k: v for k, v in kinds.items() if v > 0}).most_common(KEPT_LINE_KINDS)
        ),
        "error_log_lines": errors_during,
        "live_again_after_s": round_or_none(recovered),
        "server_alive": server.proc.poll() is None,
        "attacker": report,
    }


def ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# -- the attackers (a child process of this script) ------------------------------------------


@dataclass
class AttackStats:
    connects: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # how each connection ended
    lifetimes: list[float] = field(default_factory=list)  # connect to the server's close
    open: int = 0
    open_max: int = 0

    def opened(self) -> None:
        self.connects += 1
        self.open += 1
        self.open_max = max(self.open_max, self.open)

    def summary(self) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "connect_failures": dict(self.connect_failures),
            "outcomes": dict(self.outcomes),
            "closed_by_server": sum(n for k, n in self.outcomes.items() if k != "held to the end"),
            "lifetime_p50_s": round_or_none(percentile(self.lifetimes, 50)),
            "lifetime_max_s": round_or_none(max(self.lifetimes) if self.lifetimes else None),
            "open_max": self.open_max,
            "open_at_end": self.open,
        }


def round_or_none(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


async def connect(
    port: int, stats: AttackStats, end: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        async with asyncio.timeout(max(0.01, min(CONNECT_TIMEOUT_S, end - time.monotonic()))):
            return await asyncio.open_connection(HOST, port)
    except TimeoutError:
        stats.connect_failures["timeout"] += 1
    except OSError as error:
        stats.connect_failures[type(error).__name__] += 1
    await asyncio.sleep(RECONNECT_DELAY_S)
    return None


async def wait_for_server(reader: asyncio.StreamReader, timeout: float) -> str | None:
    """How the server ended the connection within ``timeout``; None if it did not."""
    try:
        data = await asyncio.wait_for(reader.read(256), max(0.0, timeout))
    except TimeoutError:
        return None
    except OSError as error:
        return f"reset ({type(error).__name__})"
    return f"answered {status_of(data)}" if data else "closed"


async def holding(
    port: int, stats: AttackStats, end: float, keep: Callable[..., Awaitable[str | None]]
) -> None:
    """Connect, let ``keep`` hold the connection, reconnect when the server ends it."""
    while time.monotonic() < end:
        pair = await connect(port, stats, end)
        if pair is None:
            continue
        reader, writer = pair
        stats.opened()
        opened = time.monotonic()
        try:
            outcome = await keep(reader, writer, end)
        finally:
            stats.open -= 1
            writer.close()
        if outcome is None:
            stats.outcomes["held to the end"] += 1
            return
        stats.outcomes[outcome] += 1
        stats.lifetimes.append(time.monotonic() - opened)
        await asyncio.sleep(RECONNECT_DELAY_S)


SLOW_HEAD = b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n" + (
    b"X-Pad: y\r\n" * 100
)


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, end: float
) -> str | None:
    """Send the head one byte a second (never its end) until the server ends it."""
    await asyncio.sleep(random.random())  # spread the sockets over the second
    for position in range(len(SLOW_HEAD)):
        now = time.monotonic()
        if now >= end:
            return None
        writer.write(SLOW_HEAD[position : position + 1])
        outcome = await wait_for_server(reader, min(1.0, end - now))
        if outcome is not None:
            return outcome
    return None


async def idle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, end: float
) -> str | None:
    """Send nothing until the server ends it."""
    return await wait_for_server(reader, end - time.monotonic())


def server_side(server_port: int, client_ports: Sequence[int]) -> dict[int, tuple[str, int]]:
    """The server's end of each of our connections (/proc/net/tcp): its TCP state ("gone"
    once reset) and the bytes in its kernel send queue."""
    wanted = set(client_ports)
    found: dict[int, tuple[str, int]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, state, queues = parts[1], parts[2], parts[3], parts[4]
        if int(local.split(":")[1], 16) != server_port:
            continue
        client = int(remote.split(":")[1], 16)
        if client in wanted:
            found[client] = (TCP_STATES.get(state, state), int(queues.split(":")[0], 16))
    return {port: found.get(port, ("gone", 0)) for port in client_ports}


async def slow_reader(
    port: int, end: float, index: int, readers: dict[int, dict[str, Any]]
) -> socket.socket | None:
    """Ask for the largest answer and read one byte a second; return the open socket."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT_S)
        request = f"GET {BIG_ANSWER} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
        await loop.sock_sendall(sock, request)
    except (OSError, TimeoutError) as error:
        readers[index] = {"outcome": f"connect failed ({type(error).__name__})"}
        sock.close()
        return None
    info: dict[str, Any] = {"port": sock.getsockname()[1], "bytes": 0, "outcome": "held"}
    readers[index] = info
    received = bytearray()
    while True:
        tick = time.monotonic()
        if tick >= end:
            break
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1), end - tick)
        except TimeoutError:
            break
        except OSError as error:
            info["outcome"] = f"reset ({type(error).__name__})"
            break
        if not data:
            info["outcome"] = "closed (EOF)"
            break
        received += data
        await asyncio.sleep(max(0.0, tick + 1.0 - time.monotonic()))
    info["bytes"] = len(received)
    info["status"] = status_of(bytes(received)) if len(received) >= 12 else None
    return sock


async def slow_readers_attack(port: int, seconds: float) -> dict[str, Any]:
    end = time.monotonic() + seconds
    readers: dict[int, dict[str, Any]] = {}
    tasks = [
        asyncio.create_task(slow_reader(port, end, index, readers)) for index in range(SLOW_READERS)
    ]
    print("ready", flush=True)
    closed_at: dict[int, tuple[float, str]] = {}  # client port: (seconds, server-side state)
    started = time.monotonic()
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        ports = [r["port"] for r in readers.values() if "port" in r]
        for client, (state, _) in server_side(port, ports).items():
            if state != "ESTABLISHED" and client not in closed_at:
                closed_at[client] = (round(time.monotonic() - started, 1), state)
    sockets = await asyncio.gather(*tasks)
    ports = [r["port"] for r in readers.values() if "port" in r]
    final = server_side(port, ports)
    for sock in sockets:
        if sock is not None:
            sock.close()
    for info in readers.values():
        if "port" in info:
            info["server_side_at_end"], info["server_kernel_queue_bytes"] = final[info["port"]]
            if info["port"] in closed_at:
                info["server_closed_after_s"], info["server_side_first"] = closed_at[info["port"]]
    states = Counter(info.get("server_side_at_end", "never connected") for info in readers.values())
    closed = [info for info in readers.values() if "server_closed_after_s" in info]
    return {
        "readers": len(readers),
        "outcomes": dict(Counter(info["outcome"] for info in readers.values())),
        "statuses": dict(Counter(str(info.get("status")) for info in readers.values())),
        "server_side_at_end": dict(states),
        "closed_by_server": len(closed),
        "closed_after_s": sorted(info["server_closed_after_s"] for info in closed),
        "bytes_read_max": max((info["bytes"] for info in readers.values()), default=0),
        "server_kernel_queue_bytes": sum(
            info.get("server_kernel_queue_bytes", 0) for info in readers.values()
        ),
    }


async def holding_attack(port: int, seconds: float, sockets: int, kind: str) -> dict[str, Any]:
    stats = AttackStats()
    end = time.monotonic() + seconds
    keep = trickle if kind == "slowloris" else idle
    tasks = [asyncio.create_task(holding(port, stats, end, keep)) for _ in range(sockets)]
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    return {"sockets": sockets, **stats.summary()}


def attack_child(kind: str, port: int, seconds: float) -> None:
    """The attacker: prints ``ready`` once its connections are under way, then one JSON line."""
    if kind == "slow readers":
        result = asyncio.run(slow_readers_attack(port, seconds))
    else:
        count = SLOWLORIS_SOCKETS if kind == "slowloris" else FLOOD_SOCKETS
        result = asyncio.run(holding_attack(port, seconds, count, kind))
    print(json.dumps(result), flush=True)


# -- a candidate's turn ------------------------------------------------------------------------


def run_candidate(
    name: str,
    env: Mapping[str, str],
    data_dir: Path,
    work: Path,
    wrk: Path | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    port = free_port()
    server = ServerProcess(name, port, env)
    result: dict[str, Any] = {
        "server": name,
        "command": " ".join(server_command(name, port)),
        "settings": SETTINGS.get(name, {"MONITOR_*": "defaults (the CLI's own)"}),
        "wrk": [],
        "attacks": [],
    }
    print(f"{name}: starting", file=sys.stderr, flush=True)
    try:
        result["startup_s"] = round(wait_until_up(port, LIVE, server.proc), 2)
        result["rss_idle_mib"] = round(server.rss_mib(), 1)
        result["processes"] = len(server.pids())
        status, body = http_get(port, BIG_ANSWER, timeout=30.0)
        result["big_answer"] = {"path": BIG_ANSWER, "status": status, "bytes": len(body)}
        result["oversize_head"] = oversize_head(port)
        if wrk is not None:
            print(f"{name}: wrk", file=sys.stderr, flush=True)
            result["wrk"] = wrk_rows(wrk, server, args.wrk_seconds)
        for kind in ATTACKS:
            if server.proc.poll() is not None:
                break
            print(f"{name}: {kind}", file=sys.stderr, flush=True)
            attack = asyncio.run(run_attack(kind, server, args.attack_seconds, data_dir, work))
            result["attacks"].append(attack)
    except (OSError, RuntimeError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        result["alive_at_end"] = server.proc.poll() is None
        result["rss_end_mib"] = round(server.rss_mib(), 1)
        result["exit_code"] = server.stop()
        result["output_lines"] = server.output.total()
        result["output_first_kinds"] = dict(server.output.snapshot().most_common(KEPT_LINE_KINDS))
    return result


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("uvicorn", "httptools", "granian", "hypercorn", "h11", "starlette"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    from assistant_monitoring import __version__

    found["assistant_monitoring"] = __version__
    return found


# -- the report ------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_report(document: Mapping[str, Any]) -> None:
    print_machine(document["machine"])
    print(f"versions: {', '.join(f'{k} {v}' for k, v in document['versions'].items())}")
    print(
        f"store: {document['store']['store']['series']} series, "
        f"{document['runs_seeded']['runs']:,} runs in the last {RUNS_HOURS:.0f} h; every "
        f"server under ulimit -n {FILE_LIMIT}; {document['wrk']['version']}"
    )
    results = document["results"]
    for row in results:
        big = row.get("big_answer", {})
        print(
            f"{row['server']}: {row['command']}; up in {fmt(row.get('startup_s'), 2)} s, "
            f"{row.get('processes', '?')} process(es), idle RSS {fmt(row.get('rss_idle_mib'))} "
            f"MiB; {BIG_ANSWER}: {big.get('bytes', 0):,} bytes; 128 KiB header: "
            f"{row.get('oversize_head', '-')}"
            + (f"; ERROR {row['error']}" if "error" in row else "")
        )
    print(
        f"\nwrk, {WRK_CONNECTIONS} connections, {WRK_THREADS} threads, "
        f"{document['args']['wrk_seconds']:.0f} s a path; CPU: the server's cores; others: "
        "cores used by other processes than the server, wrk and this one (a shared machine)"
    )
    print_table(
        [
            *("server", "path", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "CPU"),
            *("RSS MiB", "others"),
        ],
        [
            [
                row["server"],
                w["path"],
                f"{w['requests_per_s']:,.0f}",
                fmt(w["latency_ms"].get("p50"), 2),
                fmt(w["latency_ms"].get("p99"), 2),
                fmt(w["latency_ms"].get("max"), 0),
                w["errors"],
                f"{w['server_cpu_cores']:.2f}",
                fmt(w["server_rss_mib_after"]),
                f"{w['other_cores']:.2f}",
            ]
            for row in results
            for w in row["wrk"]
        ],
    )
    print(
        f"\nunder attack ({document['args']['attack_seconds']:.0f} s each): GET /live on a "
        f"fresh connection every {POLL_INTERVAL_S * 1000:.0f} ms (failed: not a 200 head "
        f"within {POLL_TIMEOUT_S:.0f} s); server RSS and sockets sampled every "
        f"{SAMPLE_INTERVAL_S} s; CPU: the server's cores; out lines: its stdout+stderr lines "
        "during the attack; err log: lines added to error*.jsonl; back s: seconds after the "
        "attack until /live answered 200 again; others: cores used by other processes"
    )
    print_table(
        [
            *("server", "attack", "polls", "failed", "p50 ms", "p99 ms", "max ms"),
            *("RSS max", "sockets max", "CPU", "out lines", "err log", "back s", "others"),
        ],
        [
            [
                row["server"],
                a["attack"],
                a["polls"],
                a["poll_failures"],
                fmt(a["poll_p50_ms"]),
                fmt(a["poll_p99_ms"]),
                fmt(a["poll_max_ms"], 0),
                fmt(a["server_rss_mib_max"]),
                a["server_sockets_max"],
                f"{a['server_cpu_cores']:.2f}",
                f"{a['server_output_lines']:,}",
                a["error_log_lines"],
                fmt(a["live_again_after_s"], 2)
                if a["live_again_after_s"] is not None
                else f"> {RECOVERY_LIMIT_S:.0f}",
                f"{a['other_cores']:.2f}",
            ]
            for row in results
            for a in row["attacks"]
        ],
    )
    print("\nattackers")
    print_table(
        ["server", "attack", "connects", "connect fails", "ended by server", "p50 s", "held"],
        [
            [
                row["server"],
                a["attack"],
                *attacker_cells(a["attacker"]),
            ]
            for row in results
            for a in row["attacks"]
            if a["attack"] != "slow readers"
        ],
    )
    print(
        "connects: connections made (and reconnected after the server ended one); ended by "
        "server: closed, reset or answered, p50 s: how long the server held those; held: "
        "still open at the end"
    )
    print(f"\nslow readers ({SLOW_READERS}, {BIG_ANSWER}, 1 byte/s, 4 KiB receive buffer)")
    for row in results:
        for a in row["attacks"]:
            if a["attack"] == "slow readers":
                r = a["attacker"]
                if "error" in r:
                    print(f"{row['server']}: {r['error']}")
                    continue
                print(
                    f"{row['server']}: closed by the server {r['closed_by_server']}/"
                    f"{r['readers']} (after {span(r['closed_after_s'])} s); their server "
                    f"side at the end {r['server_side_at_end']}; client saw {r['outcomes']}; "
                    f"statuses {r['statuses']}; RSS max {a['server_rss_mib_max']:.1f} MiB; "
                    f"{r['server_kernel_queue_bytes'] / 2**20:.1f} MiB left in the kernel's "
                    "send queues of the server's ends at the end"
                )
    print("\nserver output during the flood (kinds of lines, digits as #)")
    for row in results:
        for a in row["attacks"]:
            if a["attack"] == "flood":
                attempts = a["attacker"].get("connects", 0) + sum(
                    a["attacker"].get("connect_failures", {}).values()
                )
                per = a["server_output_lines"] / attempts if attempts else 0.0
                print(
                    f"{row['server']}: {a['server_output_lines']:,} lines "
                    f"({a['server_output_lines'] / a['seconds']:,.0f}/s), "
                    f"{a['error_log_lines']:,} error-log lines, for {attempts:,} connection "
                    f"attempts ({per:.2f} lines per attempt)"
                )
                for kind, count in a["server_output_kinds"].items():
                    print(f"    {count:>7,}  {kind}")
    print(
        f"\nother processes used {document['load']['other_cpu_s']:.1f} CPU-s during the "
        f"{document['load']['wall_s']:.0f} s run (an average of "
        f"{document['load']['other_load']:.2f} cores)"
    )


def span(values: Sequence[float]) -> str:
    """``5.4`` or ``5.4 to 6.4``; ``-`` when empty."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low} to {high}"


def attacker_cells(report: Mapping[str, Any]) -> list[str]:
    if "error" in report:
        return [report["error"], "", "", "", ""]
    return [
        f"{report['connects']:,}",
        f"{sum(report['connect_failures'].values()):,}",
        f"{report['closed_by_server']:,}",
        fmt(report["lifetime_p50_s"]),
        f"{report['open_at_end']:,}",
    ]


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--only", action="append", choices=CANDIDATES, help="run this candidate (repeatable)"
    )
    parser.add_argument("--wrk-seconds", type=float, default=10.0, help="seconds of each wrk run")
    parser.add_argument("--attack-seconds", type=float, default=20.0, help="seconds of each attack")
    parser.add_argument("--wrk", help="the wrk binary (default: wrk on PATH)")
    parser.add_argument("--no-top-up", action="store_true", help="store ends at UTC midnight")
    parser.add_argument("--attack", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.wrk_seconds <= 60 or not 1 <= args.attack_seconds <= 120:
        parser.error("--wrk-seconds must be 1 to 60, --attack-seconds 1 to 120")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.attack:
        attack_child(args.attack, args.port, args.attack_seconds)
        return

    from _month_store import migrate_database, prepare_month_store, seed_runs

    from assistant.stubllm import StubLLMServer

    watch_load = LoadWatch()
    wrk = find_wrk(args.wrk)
    if wrk is None:
        print("wrk not found (apt-get install wrk): the wrk figures are skipped", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    data_dir = work / "data"
    stub = StubLLMServer(host=HOST).start()
    results: list[dict[str, Any]] = []
    try:
        print("preparing the store", file=sys.stderr, flush=True)
        store = prepare_month_store(data_dir, top_up=not args.no_top_up)
        runs = seed_runs(data_dir, hours=RUNS_HOURS)
        env = server_env(data_dir, stub.url)
        migrate_database(env)
        for name in args.only or CANDIDATES:
            results.append(run_candidate(name, env, data_dir, work, wrk, args))
    finally:
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)
    document = {
        "machine": machine_info(),
        "load": watch_load.report(),
        "versions": versions(),
        "wrk": {
            "binary": str(wrk) if wrk else None,
            "version": wrk_version(wrk) if wrk else None,
            "command": f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.wrk_seconds:.0f}s "
            "--latency URL",
        },
        "args": {"wrk_seconds": args.wrk_seconds, "attack_seconds": args.attack_seconds},
        "file_limit": FILE_LIMIT,
        "store": store,
        "runs_seeded": runs,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    print_report(document)


if __name__ == "__main__":
    main()
