"""Local alerting: rules, one notification per transition, webhook retries, the CLI, SSE."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant_monitoring.alerts import AlertBook, Finding, evaluate_rules, webhook_notifier
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.query import query_window
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.settings import load_settings
from assistant_monitoring.usage.budget import BudgetStatus
from assistant_monitoring.usage.periods import Window
from tests.conftest import flush_into_store, installed_assistant, run_cli, subprocess_env
from tests.test_serve import free_port, get, start_server


class Receiver:
    """A local webhook receiver that fails the first ``failures`` POSTs with a 500."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if receiver.attempts <= failures else 200
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def record(data_dir: Path, *, failures: int, successes: int, cost: float = 0.0) -> None:
    inst = Instrumentation(MetricsRegistry())
    inst.metrics.pipeline_runs.labels("failure").inc(failures)
    inst.metrics.pipeline_runs.labels("success").inc(successes)
    inst.metrics.stage_runs.labels("generate", "failure").inc(failures)
    if cost:
        inst.metrics.llm_cost.labels("anthropic", "m").inc(cost)
    flush_into_store(data_dir, inst)


def test_rules(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record(data_dir, failures=4, successes=6, cost=8.5)
    monkeypatch.setenv("MONITOR_DAILY_BUDGET_USD", "10")
    settings = load_settings().settings
    store = MetricsStore(data_dir / "monitoring.db")
    now = time.time()
    window = query_window(store.connect(), now - 300, now + 60, now=now)
    store.close()
    day = Window(now - 3600, now + 3600)
    month = Window(now - 10 * 86400, now + 20 * 86400)
    budgets = [
        BudgetStatus("day", 10.0, 8.5, 0, day, now),
        # $2 of $5 a third of the way in: $6 projected, over the budget.
        BudgetStatus("month", 5.0, 2.0, 0, month, now),
    ]
    findings = evaluate_rules(
        settings, window, open_breakers=["llm:anthropic"], budgets=budgets, memory_unhealthy=None
    )
    by_rule = {f.rule: f for f in findings}
    assert by_rule["pipeline_failure_ratio"].severity == "critical"
    assert by_rule["pipeline_failure_ratio"].value == pytest.approx(0.4)
    assert "stage_failures:generate" in by_rule
    assert "breaker_open" in by_rule
    assert by_rule["daily_cost_80"].severity == "warning"
    assert "daily_cost_50" not in by_rule, "only the highest threshold crossed"
    assert "daily_cost_projected" not in by_rule, "a threshold crossed says enough"
    assert by_rule["monthly_cost_projected"].severity == "warning"
    assert by_rule["monthly_cost_projected"].value == pytest.approx(6.0)
    assert "MONITOR_MONTHLY_BUDGET_USD" in by_rule["monthly_cost_projected"].message
    early = BudgetStatus("month", 5.0, 2.0, 0, Window(now - 3600, now + 30 * 86400), now)
    assert not evaluate_rules(
        settings,
        window.__class__(0, 1, []),
        open_breakers=[],
        budgets=[early],
        memory_unhealthy=None,
    ), "an hour into the month, a projection is noise"
    quiet = evaluate_rules(
        settings,
        window.__class__(0, 1, []),
        open_breakers=[],
        budgets=[],
        memory_unhealthy=None,
    )
    assert quiet == []


def test_one_notification_per_transition(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    store = MetricsStore(data_dir / "monitoring.db")
    sent: list[tuple[str, str]] = []
    book = AlertBook(store, [lambda event, alert: sent.append((event, alert.rule))])
    firing = [Finding("breaker_open", "critical", 1, "circuit open")]
    assert [e for e, _ in book.apply(firing, 100.0)] == ["firing"]
    assert book.apply(firing, 105.0) == [], "still firing: not sent again"
    assert [e for e, _ in book.apply([], 110.0)] == ["resolved"]
    assert sent == [("firing", "breaker_open"), ("resolved", "breaker_open")]
    (alert,) = book.recent()
    assert (alert.state, alert.started_at, alert.resolved_at) == ("resolved", 100.0, 110.0)
    store.close()


def test_webhook_retries_transient_failures() -> None:
    hook = Receiver(failures=2)
    try:
        from assistant_monitoring.alerts import Alert

        notify = webhook_notifier(hook.url, sleep=lambda _: None)
        notify("firing", Alert(1, "slow_pipeline", "warning", "firing", 1.0, None, 12.0, "slow"))
    finally:
        hook.close()
    assert hook.attempts == 3
    assert hook.bodies == [
        {
            "status": "firing",
            "id": 1,
            "rule": "slow_pipeline",
            "severity": "warning",
            "state": "firing",
            "started_at": 1.0,
            "resolved_at": None,
            "value": 12.0,
            "message": "slow",
        }
    ]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (``monitor serve`` below runs as one)."""
    return run_cli(*args, **env)


def test_cli_fires_once_then_resolves(data_dir: Path, receiver: Receiver) -> None:
    from assistant_monitoring.breaker import BreakerConfig, BreakerStateStore, CircuitBreaker

    data_dir.mkdir(parents=True)
    store = BreakerStateStore(data_dir / "monitoring.db")
    CircuitBreaker("llm:anthropic", BreakerConfig(failure_threshold=1), store=store).record_failure(
        ConnectionError("down")
    )
    store.close()
    env = {"ALERT_WEBHOOK_URL": receiver.url}
    first = run("monitor", "alerts", "--json", **env)
    assert first.returncode == 1, first.stderr
    (alert,) = json.loads(first.stdout)["firing"]
    assert alert["rule"] == "breaker_open"
    assert "llm:anthropic" in alert["message"]
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    again = run("monitor", "alerts", **env)
    assert again.returncode == 1
    assert "breaker_open" in again.stdout
    assert len(receiver.bodies) == 1, "still firing: nothing re-sent"
    assert run("monitor", "breakers", "--reset", "llm:anthropic").returncode == 0
    resolved = run("monitor", "alerts", "--json", **env)
    assert resolved.returncode == 0
    document = json.loads(resolved.stdout)
    assert document["firing"] == []
    assert document["resolved"][0]["rule"] == "breaker_open"
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]


def test_server_streams_alerts_as_server_sent_events(data_dir: Path) -> None:
    record(data_dir, failures=5, successes=0)
    port = free_port()
    server = subprocess.Popen(
        [installed_assistant(), "monitor", "serve", "--port", str(port)],
        env=subprocess_env(
            ALERT_MINIMUM_RUNS="1", MONITOR_FLUSH_INTERVAL="0.5", LLM_API_KEY="k-00000000"
        ),
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                get(f"http://127.0.0.1:{port}/live")
                break
            except OSError:
                time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(b"GET /api/alerts/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            deadline = time.monotonic() + 15
            while b"event: alert" not in received and time.monotonic() < deadline:
                received += sock.recv(4096)
        assert b"text/event-stream" in received
        assert b"event: alert" in received
        data = received.split(b"event: alert\ndata: ", 1)[1].split(b"\n", 1)[0]
        firing = json.loads(data)
        assert firing["event"] == "firing"
        event_id = received.split(b"id: ", 1)[1].split(b"\n", 1)[0].decode()
        assert float(event_id) == firing["at"] == firing["started_at"]
        # A browser that reconnects says what it saw last, and gets what came after.
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            earlier = repr(float(event_id) - 0.001)
            sock.sendall(
                b"GET /api/alerts/stream HTTP/1.1\r\nHost: x\r\n"
                b"Last-Event-ID: " + earlier.encode() + b"\r\n\r\n"
            )
            replayed = b""
            deadline = time.monotonic() + 5
            while b"event: alert" not in replayed and time.monotonic() < deadline:
                replayed += sock.recv(4096)
        assert b"id: " + event_id.encode() in replayed, replayed
        status, _, body = get(f"http://127.0.0.1:{port}/api/alerts")
        assert status == 200
        assert any(a["rule"] == "pipeline_failure_ratio" for a in json.loads(body)["firing"])
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0


def test_a_hanging_webhook_does_not_hold_up_serve_past_its_stop_bound(data_dir: Path) -> None:
    # A webhook that accepts and never answers: each notification waits its 5 s timeout,
    # three attempts. SIGTERM mid-notification must still stop the server well within
    # pm2's kill_timeout (8 s), exit 0, with the metrics flushed.
    record(data_dir, failures=5, successes=0)
    hanging = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(hanging.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    webhook = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
    process, _ = start_server(
        ALERT_MINIMUM_RUNS="1",
        ALERT_WEBHOOK_URL=webhook,
        MONITOR_FLUSH_INTERVAL="0.5",
        LLM_API_KEY="k-00000000",
    )
    try:
        deadline = time.monotonic() + 15
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert accepted, "the alert was never notified"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for sock in accepted:
            sock.close()
        hanging.close()
    assert process.returncode == 0, stderr
    assert took < 8, f"took {took:.1f} s to stop (pm2 kills at 8 s)"
    assert "Traceback" not in stderr
    assert "evaluation still under way" in stderr
