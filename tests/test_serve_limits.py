"""`monitor serve` under hostile load at its deployment's own limits (issue 21).

The server runs as the installed CLI under ``ulimit -n 1024`` (soft and hard: it
cannot raise it), as the shipped systemd unit would give it without LimitNOFILE. The
attackers run in their own process (``tests/helpers/attack.py``); this process polls
``/live`` every 100 ms on a new connection and every poll must be answered, none
waiting out the attack (LIVE_WITHIN_SECONDS), throughout: a flood of idle connections,
reconnecting slowloris heads, and readers that take an answer one byte a second. How
fast the polls are under attack is measured by benchmarks/bench_servers.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.server.guard import SEND_TIMEOUT_SECONDS, descriptors_needed
from tests.conftest import (
    REPO_ROOT,
    installed_assistant,
    make_healthy,
    run_assistant,
    subprocess_env,
)
from tests.helpers.attack import LivePolls, polling
from tests.helpers.runs import seed_runs
from tests.test_serve import free_port, get
from tests.test_serve_http import exchange

# Every /live poll under attack is answered, and none waits out the attack: a probe
# queued behind a flood or a slowloris head waits seconds (the head timeout is 10 s).
# Not a speed test: how fast the polls are under each attack (issue 21's 250 ms; 178 ms
# at most when measured) is benchmarks/bench_servers.py's, on a machine not also
# running the suite; here a busy machine's scheduling must not fail the test.
LIVE_WITHIN_SECONDS = 2.0
FILE_LIMIT = 1024  # systemd's default soft limit, here the hard one too


def under_ulimit(soft: int, hard: int, argv: list[str]) -> list[str]:
    """``argv`` run by a shell that first sets ``ulimit -n`` (no preexec_fn: this
    process has threads). ``exec`` keeps the process id: it is the server's."""
    script = f'ulimit -S -n {soft} && ulimit -H -n {hard} && exec "$@"'
    return ["sh", "-c", script, "sh", *argv]


@contextmanager
def limited_server(
    *, soft: int = FILE_LIMIT, hard: int = FILE_LIMIT, **env: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The installed `monitor serve` under ``ulimit -n``; SIGTERM at the end."""
    port = free_port()
    process = subprocess.Popen(
        under_ulimit(soft, hard, [installed_assistant(), "monitor", "serve", "--port", str(port)]),
        env=subprocess_env(**env),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(150):
            try:
                if get(f"http://127.0.0.1:{port}/live")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield process, port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def attack(mode: str, port: int, count: int, seconds: float, *extra: str) -> Any:
    argv = [sys.executable, "-m", "tests.helpers.attack", mode, str(port), str(count)]
    return subprocess.Popen(
        under_ulimit(8192, 8192, [*argv, str(seconds), *extra]),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def log_records(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "logs" / "assistant.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_live_throughout(polls: Any, seconds: float) -> None:
    assert not polls.failures, polls.summary()
    assert len(polls.latencies) >= seconds * 5, polls.summary()  # ~10 a second asked
    assert max(polls.latencies) < LIVE_WITHIN_SECONDS, polls.summary()


@dataclass
class Attacked:
    """How a server fared: the /live polls, the attacker's own report, its stderr,
    and the largest of what ``sample`` read while the polls went on."""

    polls: LivePolls
    result: Any
    stderr: str
    most: int


def live_under_attack(
    server: subprocess.Popen[str],
    port: int,
    mode: str,
    count: int,
    seconds: float,
    *extra: str,
    warmup: float,
    sample: Callable[[], int] | None = None,
) -> Attacked:
    """Attack for ``seconds``; from ``warmup`` in, poll /live until ``warmup`` before
    the end; then SIGTERM. Asserts the server stopped cleanly and answered every poll
    within LIVE_WITHIN_SECONDS."""
    flood = attack(mode, port, count, seconds, *extra)
    time.sleep(warmup)
    polled = seconds - 2 * warmup
    poller, polls = polling(port, polled)
    most = 0
    while poller.is_alive():
        if sample is not None:
            most = max(most, sample())
        time.sleep(0.2)
    result = json.loads(flood.communicate(timeout=60)[0])
    assert get(f"http://127.0.0.1:{port}/live")[0] == 200  # and after it
    server.send_signal(signal.SIGTERM)
    stderr = server.communicate(timeout=30)[1]
    assert server.returncode == 0, stderr
    assert_live_throughout(polls, polled)
    assert "Traceback" not in stderr
    return Attacked(polls, result, stderr, most)


@pytest.mark.slow
def test_two_thousand_idle_connections_at_ulimit_1024(data_dir: Path) -> None:
    with limited_server() as (server, port):
        attacked = live_under_attack(
            server, port, "idle", 2000, 12.0, warmup=1.0, sample=lambda: open_files(server.pid)
        )
    assert attacked.result["opened"] >= 2000, attacked.result
    # Descriptors stayed within the budget: never an accept() failure, never EMFILE.
    assert attacked.most <= descriptors_needed(512), attacked.most
    stderr = attacked.stderr
    assert "out of system resource" not in stderr
    # At most one summary line a minute (the flood lasted less than one): on stderr
    # the start-up line and that one, in the log one WARNING and nothing louder.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) <= 3, lines
    records = log_records(data_dir)
    loud = [r for r in records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    assert len(loud) <= 2, [r["msg"] for r in loud]
    assert all("connections in the last" in r["msg"] for r in loud), [r["msg"] for r in loud]
    assert any("idle closed" in r["msg"] or "head still arriving" in r["msg"] for r in loud)


@pytest.mark.slow
def test_six_hundred_reconnecting_slowloris_heads(data_dir: Path) -> None:
    with limited_server() as (server, port):
        attacked = live_under_attack(server, port, "slowloris", 600, 12.0, warmup=1.5)
    # Past the 512 places, each newcomer took the place of the oldest head.
    assert attacked.result["closed_by_server"] >= 88, attacked.result


@pytest.mark.slow
def test_slow_readers_are_cut_off_and_hold_no_place(data_dir: Path) -> None:
    seed_runs(data_dir, 1000)
    seconds = SEND_TIMEOUT_SECONDS + 8
    with limited_server(MONITOR_MAX_CONNECTIONS="20") as (server, port):
        status, _, body = get(f"http://127.0.0.1:{port}/api/runs?limit=1000")
        assert status == 200
        assert len(body) > 1_000_000, len(body)  # a large answer, as in the issue
        idle_rss = rss_kib(server.pid)
        # Twenty readers fill all twenty places, at one byte a second each.
        attacked = live_under_attack(
            server,
            port,
            "readers",
            20,
            seconds,
            "/api/runs?limit=1000",
            warmup=2.0,
            sample=lambda: rss_kib(server.pid),
        )
    result = attacked.result
    cut = result["cut_after_seconds"]
    # Each was cut off: by the send timeout, or earlier to make room for a poll.
    assert all(at is not None and at <= SEND_TIMEOUT_SECONDS + 4 for at in cut), result
    assert all(read < 1_000_000 for read in result["read"]), result
    # Answers waiting for readers are bounded (16 at most, 1.7 MB each).
    assert attacked.most - idle_rss < 80 * 1024, (idle_rss, attacked.most)


@pytest.mark.slow
def test_huge_unauthorised_queries_cost_nothing_in_proportion(data_dir: Path) -> None:
    # 20 connections sending 10,000 query names each, as fast as they are answered,
    # without the token: the access log parsed each query whole at any level (/live
    # went to a 1.4 s median), and uvicorn parses the whole URL before routing. Now
    # the request line is refused past 8 KiB before uvicorn sees it (414), nothing
    # reads a query before authorisation, and the access log reads 512 characters.
    seconds = 10.0
    token = "queries-token-0123456789"
    with limited_server(MONITOR_TOKEN=token, MONITOR_ACCESS_LOG="true") as (server, port):
        result = live_under_attack(server, port, "queries", 20, seconds, warmup=1.0).result
    assert result["statuses"].get("414", 0) >= 100, result  # the flood was answered
    assert token not in (data_dir / "logs" / "assistant.jsonl").read_text()


def test_when_every_place_is_busy_probes_still_get_through(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two places, both busy with /health waiting 3 s on the LLM (requests under way
    # are never given up): /live and /ready are answered from the reserve, anything
    # else there is a 503 saying so.
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        stub.plan.latency = 3.0
        with limited_server(MONITOR_MAX_CONNECTIONS="2") as (_, port):
            busy = []
            for _ in range(2):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                busy.append(sock)
            try:
                time.sleep(0.5)
                assert get(f"http://127.0.0.1:{port}/live")[0] == 200
                assert get(f"http://127.0.0.1:{port}/ready")[0] == 200
                status, _, body = get(f"http://127.0.0.1:{port}/metrics")
                assert status == 503
                assert "only /live and /ready" in json.loads(body)["error"]
                for sock in busy:  # and the busy ones got their answers
                    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            finally:
                for sock in busy:
                    sock.close()


def test_sigterm_with_slow_readers_open_stops_quietly_and_promptly(data_dir: Path) -> None:
    seed_runs(data_dir, 1000)
    with limited_server() as (server, port):
        readers = attack("readers", port, 10, 20.0, "/api/runs?limit=1000")
        time.sleep(3.0)
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=30)[1]
        took = time.monotonic() - started
        readers.kill()
        readers.communicate()
    assert server.returncode == 0, stderr
    assert took < 8, f"stopped in {took:.1f} s (pm2 kills at 8 s)"
    assert "ERROR" not in stderr, stderr
    assert not [r for r in log_records(data_dir) if r["level"] in ("ERROR", "CRITICAL")]


def test_the_file_limit_is_raised_where_allowed_else_the_cap_fits_it(data_dir: Path) -> None:
    needed = descriptors_needed(512)
    # Soft 256, hard above what is needed: raised at start, all 512 places kept.
    with limited_server(soft=256, hard=needed + 10) as (server, _):
        limits = Path(f"/proc/{server.pid}/limits").read_text()
        soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
        assert soft >= needed, limits
    # Hard 512: cannot be raised; the server holds fewer and says so, once, with the fix.
    with limited_server(soft=512, hard=512) as (server, port):
        assert get(f"http://127.0.0.1:{port}/live")[0] == 200
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=30)[1]
    warned = [line for line in stderr.splitlines() if "needs" in line and "open files" in line]
    assert len(warned) == 1, stderr
    assert "LimitNOFILE" in warned[0]
    fitting = 512 - (needed - 512)
    assert f"holding {fitting} connections" in warned[0], warned[0]


def test_small_protocol_manners(data_dir: Path) -> None:
    token = "manners-token-0123456789"
    with limited_server(MONITOR_TOKEN=token) as (_, port):
        url = f"http://127.0.0.1:{port}"
        status, headers, _ = get(url + "/metrics")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        evil = b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        answer = exchange(port, b"GET /live/" + evil)
        # Not a redirect to a URL built from the Host header (401: the token first).
        assert answer.startswith(b"HTTP/1.1 401"), answer
        assert b"evil.example" not in answer
        answer = exchange(port, b"GET /" + evil)
        assert answer.startswith(b"HTTP/1.1 307"), answer
        assert b"\r\nlocation: /dashboard\r\n" in answer, answer


def test_a_non_ascii_token_is_refused_in_settings(data_dir: Path) -> None:
    result = run_assistant(
        "monitor", "serve", "--port", "0", timeout=30, MONITOR_TOKEN="jeton-secret-été-2026"
    )
    assert result.returncode == 2
    assert "MONITOR_TOKEN" in result.stderr
    assert "ASCII" in result.stderr
    assert "été" not in result.stderr  # the value is a secret: never echoed


def test_alert_streams_take_at_most_a_quarter_of_the_places(data_dir: Path) -> None:
    # A dashboard left open holds its event stream for as long as the tab lives: eight
    # places, two streams at most; the third is told to come back later.
    with limited_server(MONITOR_MAX_CONNECTIONS="8") as (_, port):
        streams = []
        try:
            for _ in range(2):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"GET /api/alerts/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                streams.append(sock)
            status, headers, body = get(f"http://127.0.0.1:{port}/api/alerts/stream")
            assert status == 503
            assert headers["Retry-After"] == "30"
            assert "2 alert streams are open" in json.loads(body)["error"]
            assert get(f"http://127.0.0.1:{port}/api/alerts")[0] == 200
        finally:
            for sock in streams:
                sock.close()
        time.sleep(1.5)  # the streams notice at their next tick
        status, _, _ = get_head(port, "/api/alerts/stream")
        assert status == 200


def get_head(port: int, path: str) -> tuple[int, bytes, bytes]:
    """A request's status and the first bytes of its answer (streams never end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = sock.recv(4096)
    return int(first[9:12]), first, b""
