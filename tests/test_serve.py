"""`assistant monitor serve`: the HTTP endpoints, bad requests, the token, shutdown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import (
    flush_into_store,
    installed_assistant,
    make_healthy,
    require_tool,
    run_assistant,
    subprocess_env,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        error.close()
        return error.code, error.headers, body


def start_server(*args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """`monitor serve ARGS` on a free port, once it answers /live: the process, its URL."""
    port = free_port()
    process = subprocess.Popen(
        [installed_assistant(), "monitor", "serve", "--port", str(port), *args],
        env=subprocess_env(**env),
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if get(url + "/live")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    return process, url


def stop_server(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then its stderr; a server that does not stop in 20 s is killed (never
    left running after the test) and the test fails."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=20)[1] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("monitor serve did not stop within 20 s of SIGTERM")


@pytest.fixture
def served(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, StubLLMServer]]:
    """A real `assistant monitor serve` process over a store with some data."""
    inst = Instrumentation(MetricsRegistry())
    inst.metrics.pipeline_runs.labels("success").inc(3)
    inst.metrics.pipeline_duration.observe(0.4)
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        flush_into_store(data_dir, inst)
        monkeypatch.setenv("MONITOR_FLUSH_INTERVAL", "0.5")
        process, url = start_server("--health-cache", "2")
        try:
            yield url, stub
        finally:
            stop_server(process)
            assert process.returncode == 0


def test_live_ready_health(served: tuple[str, StubLLMServer]) -> None:
    url, stub = served
    status, _, body = get(url + "/live")
    assert status == 200
    assert json.loads(body)["status"] == "live"
    status, _, body = get(url + "/ready")
    assert status == 200, body
    status, headers, body = get(url + "/health")
    assert status == 200, body
    assert headers["Content-Type"] == "application/health+json"
    assert json.loads(body)["status"] == "pass"
    model_calls = len([r for r in stub.requests if r.path == "/v1/models"])
    for _ in range(20):
        get(url + "/health")
    after = len([r for r in stub.requests if r.path == "/v1/models"])
    assert after - model_calls <= 1, "a flood of probes is served from the cache"


def test_health_503_when_unhealthy(served: tuple[str, StubLLMServer]) -> None:
    url, stub = served
    stub.plan.error_rate = 1.0
    time.sleep(2.1)  # past the health cache
    status, _, body = get(url + "/health")
    assert status == 503
    assert json.loads(body)["status"] == "fail"


def test_metrics_text_and_openmetrics(served: tuple[str, StubLLMServer], tmp_path: Path) -> None:
    url, _ = served
    status, headers, body = get(url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'assistant_pipeline_runs_total{status="success"} 3' in text
    status, headers, body = get(url + "/metrics", {"Accept": "application/openmetrics-text"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")
    promtool = require_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_json_api(served: tuple[str, StubLLMServer]) -> None:
    url, _ = served
    status, _, body = get(url + "/api/metrics?period=1h")
    assert status == 200
    report: dict[str, Any] = json.loads(body)
    assert report["pipeline"]["runs"] == 3
    status, _, body = get(url + "/api/runs?status=failed&limit=5")
    assert status == 200
    assert json.loads(body) == {"runs": []}
    status, _, body = get(url + "/api/breakers")
    assert status == 200
    assert "breakers" in json.loads(body)


def test_bad_requests_get_json_errors_and_the_server_survives(
    served: tuple[str, StubLLMServer],
) -> None:
    url, _ = served
    status, _, body = get(url + "/nope")
    assert status == 404
    assert "unknown path" in json.loads(body)["error"]
    status, _, body = get(url + "/api/metrics?period=zzz")
    assert status == 400
    assert json.loads(body)["error"].startswith("period: expected a duration")
    status, _, body = get(url + "/api/runs?limit=lots")
    assert status == 400
    # Valid-looking input is a 400 naming the parameter, never a 500 or silence.
    for path, named in [
        ("/api/metrics?period=99999999999999d", "period"),
        ("/api/timeseries?period=99999999999999d", "period"),
        ("/api/timeseries?period=0m", "period"),
        ("/api/metrics?period=0m", "period"),
        ("/api/runs?since=garbage", "since"),
        ("/api/runs?since=", "since"),
        ("/api/runs?stauts=failed", "stauts"),
        ("/api/runs?status=exploded", "status"),
        ("/api/runs?limit=0", "limit"),
        ("/api/breakers?x=1", "x"),
        ("/api/metrics?group=gpu", "group"),
    ]:
        status, _, body = get(url + path)
        assert status == 400, (path, body)
        assert named in json.loads(body)["error"], (path, body)
    status, _, body = get(url + "/api/metrics?x=" + "a" * 70_000)
    assert status == 414
    assert json.loads(body)["error"]
    # A client that connects and says nothing does not block the others.
    idle = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    try:
        assert get(url + "/live")[0] == 200
    finally:
        idle.close()
    assert get(url + "/live")[0] == 200


def test_non_loopback_needs_a_token(data_dir: Path) -> None:
    result = subprocess.run(
        [installed_assistant(), "monitor", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "set MONITOR_TOKEN" in result.stderr
    # The same address from the environment is not silently ignored.
    result = run_assistant("monitor", "serve", "--port", "0", timeout=30, MONITOR_HOST="0.0.0.0")
    assert result.returncode == 2
    assert "MONITOR_HOST 0.0.0.0 is not loopback: set MONITOR_TOKEN" in result.stderr


def test_a_short_token_is_refused(data_dir: Path) -> None:
    result = run_assistant("monitor", "serve", "--port", "0", timeout=30, MONITOR_TOKEN="12345")
    assert result.returncode == 2
    assert "MONITOR_TOKEN: must be at least 16 characters" in result.stderr
    assert "12345" not in result.stderr, "a secret, even a bad one, is never printed"


def test_bearer_comparison() -> None:
    from assistant_monitoring.server.app import bearer_matches

    token = "0123456789abcdef"
    assert bearer_matches(f"Bearer {token}", token)
    assert bearer_matches(f"bearer  {token} ", token)
    assert not bearer_matches(f"Bearer {token}x", token)
    assert not bearer_matches(token, token)
    assert not bearer_matches("Bearer ünïcödé", token)  # no TypeError from compare_digest
    assert not bearer_matches("", token)


@contextmanager
def serving(**env: str) -> Iterator[tuple[str, list[str]]]:
    """`monitor serve` on a free port until the block ends; then SIGTERM, exit 0.

    Yields its URL and a list that holds its stderr once it has stopped.
    """
    process, url = start_server(**env)
    stderr: list[str] = []
    try:
        yield url, stderr
    finally:
        stderr.append(stop_server(process))
    assert process.returncode == 0


def test_token_guards_everything_but_live(data_dir: Path) -> None:
    with serving(MONITOR_TOKEN="s3cret-token-value") as (url, _):
        assert get(url + "/metrics")[0] == 401
        assert get(url + "/metrics", {"Authorization": "Bearer s3cret-token-value"})[0] == 200
        # The scheme is case-insensitive (RFC 9110); the token is not.
        assert get(url + "/metrics", {"Authorization": "bearer s3cret-token-value"})[0] == 200
        assert get(url + "/metrics", {"Authorization": "BEARER s3cret-token-value"})[0] == 200
        assert get(url + "/metrics", {"Authorization": "Bearer S3CRET-TOKEN-VALUE"})[0] == 401
        assert get(url + "/metrics", {"Authorization": "Basic s3cret-token-value"})[0] == 401
        assert get(url + "/metrics", {"Authorization": "Bearer s3cret-token-valu"})[0] == 401
        assert get(url + "/api/alerts/stream?token=wrong")[0] == 401


def test_a_damaged_store_is_reported_once_not_every_few_seconds(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "monitoring.db").write_bytes(b"\x00not a database" * 1000)
    with serving(MONITOR_FLUSH_INTERVAL="0.2") as (url, stderr_lines):
        assert get(url + "/ready")[0] == 503
        time.sleep(3.5)  # three rounds of the periodic work, at least
    stderr = "".join(stderr_lines)
    assert stderr.count("periodic health and alert evaluation failed") == 1, stderr
    assert "Traceback" not in stderr
