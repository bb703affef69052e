"""Exports the collector refuses: real `assistant ask` processes export to a local
receiver answering 500, 413, 429, 400 or 401 to every signal. Each export call that
failed is counted in assistant_metrics_errors_total by signal and reason, each
(signal, status) is said once in the log without a credential, and a refusal being
retried never holds the exit."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import installed_assistant, openai_env, subprocess_env

pytest.importorskip(
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    reason="the [otel] extra is not installed",
)

SIGNALS = ("traces", "metrics", "logs")
USER, PASSWORD, HEADER_SECRET = "user-secret-7k2", "pass-secret-9q4", "header-secret-3m8"
SECRETS = (USER, PASSWORD, HEADER_SECRET)
KEY = "sk-otel-000000000000"


@dataclass
class Refuser:
    """An OTLP/HTTP endpoint on loopback answering ``status`` to every export."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        refuser = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                refuser.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                self.send_response(refuser.status)
                for name, value in refuser.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def endpoint(self) -> str:
        """The base URL, with credentials in its userinfo (never to be shown)."""
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def calls(self, signal: str) -> int:
        return sum(1 for path, _ in self.requests if path == f"/v1/{signal}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@dataclass
class Asked:
    done: subprocess.CompletedProcess[str]
    elapsed: float
    errors: dict[str, float]  # assistant_metrics_errors_total by operation
    exposition: str
    warnings: list[dict[str, Any]]  # our once-per-(signal, status) lines
    logs: str  # every log file's text


def ask(stub: StubLLMServer, refuser: Refuser, data_dir: Path, **env: str) -> Asked:
    variables = {
        **openai_env(stub.url),  # what is tested is the export, not the provider
        "LLM_API_KEY": KEY,
        "LLM_MAX_RETRIES": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": refuser.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={HEADER_SECRET}",
        "OTEL_LOGS_EXPORTER": "otlp",
        # Several export calls per signal in one `ask`: the warning must still be one.
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        # The receiver is a Python thread on a busy test machine: let it answer.
        "MONITOR_OTEL_EXIT_TIMEOUT_MS": "20000",
        **env,
    }
    started = time.monotonic()
    done = subprocess.run(
        [installed_assistant(), "ask", "hello"],
        env=subprocess_env(**variables),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    shown = subprocess.run(
        [installed_assistant(), "monitor", "metrics", "--format", "prometheus"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    errors = {
        match[1]: float(match[2])
        for match in re.finditer(
            r'^assistant_metrics_errors_total\{operation="([^"]+)"\} (\S+)$',
            shown.stdout,
            re.MULTILINE,
        )
    }
    logs = "".join(path.read_text() for path in sorted((data_dir / "logs").glob("*.jsonl")))
    main_log = (data_dir / "logs" / "assistant.jsonl").read_text()
    lines = [json.loads(line) for line in main_log.splitlines() if line]
    warnings = [line for line in lines if line.get("event") == "otel_export_failed"]
    return Asked(done, elapsed, errors, shown.stdout, warnings, logs)


def assert_no_secret(asked: Asked) -> None:
    for secret in SECRETS:
        for where, text in (
            ("stdout", asked.done.stdout),
            ("stderr", asked.done.stderr),
            ("log files", asked.logs),
            ("metrics", asked.exposition),
        ):
            assert secret not in text, f"{secret} in {where}"


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (500, {}),
        (413, {}),
        # Retry-After beyond the exporter's 10 s timeout: it gives up at once.
        (429, {"Retry-After": "30"}),
        (400, {}),
        (401, {"WWW-Authenticate": "Bearer"}),
    ],
)
def test_each_refused_export_is_counted_by_reason_and_said_once(
    stub: StubLLMServer, data_dir: Path, status: int, headers: dict[str, str]
) -> None:
    refuser = Refuser(status, headers)
    try:
        asked = ask(stub, refuser, data_dir)
    finally:
        refuser.close()
    assert asked.done.returncode == 0, asked.done.stderr
    assert "Traceback" not in asked.done.stderr
    assert asked.elapsed < 30, f"ask took {asked.elapsed:.1f} s"
    # The credentials were sent (so they were there to leak), and leaked nowhere.
    assert all(sent.get("x-api-key") == HEADER_SECRET for _, sent in refuser.requests)
    assert_no_secret(asked)

    for signal in SIGNALS:
        calls = refuser.calls(signal)
        assert calls >= 1, f"no {signal} export reached the receiver"
        # Once per export call that failed: these statuses are not retried.
        assert asked.errors.get(f"otel_{signal}_http_{status}") == calls, (signal, asked.errors)
    assert "otel_exit" not in asked.errors, "a refusal is not a timeout"
    assert refuser.calls("logs") >= 2, "the once-only warning was put to the test"

    # One warning per signal for this status, however many batches were refused.
    said = sorted((w["signal"], w["http_status"]) for w in asked.warnings)
    assert said == sorted((signal, status) for signal in SIGNALS)
    for warning in asked.warnings:
        assert warning["level"] == "WARNING"
        assert warning["operation"] == f"otel_{warning['signal']}_http_{status}"
        message = warning["msg"]
        assert f"OTLP {warning['signal']} export refused" in message
        assert f"http://127.0.0.1:{refuser.port}/v1/{warning['signal']}" in message
        assert f"HTTP {status}" in message
        assert asked.done.stderr.count(message) == 1, "said once on the terminal too"
    if status == 401:
        assert "OTEL_EXPORTER_OTLP_HEADERS" in asked.warnings[0]["msg"]


def test_a_refusal_being_retried_does_not_hold_the_exit(
    stub: StubLLMServer, data_dir: Path
) -> None:
    """429 with Retry-After 20 s and an exporter timeout of 60 s: the SDK would try
    again for 40 s. The exit waits its budget (3 s here), then counts the refusal
    (not as a timeout: the collector did answer) and leaves."""
    refuser = Refuser(429, {"Retry-After": "20"})
    try:
        asked = ask(
            stub,
            refuser,
            data_dir,
            OTEL_EXPORTER_OTLP_TIMEOUT="60",
            OTEL_BSP_SCHEDULE_DELAY="5000",
            OTEL_BLRP_SCHEDULE_DELAY="5000",
            OTEL_METRIC_EXPORT_INTERVAL="60000",
            MONITOR_OTEL_EXIT_TIMEOUT_MS="3000",
        )
    finally:
        refuser.close()
    assert asked.done.returncode == 0, asked.done.stderr
    assert "Traceback" not in asked.done.stderr
    assert asked.elapsed < 20, f"ask took {asked.elapsed:.1f} s: it waited on the retries"
    for signal in SIGNALS:
        assert refuser.calls(signal) == 1, "still waiting out the Retry-After"
        assert asked.errors.get(f"otel_{signal}_http_429") == 1, asked.errors
    assert "otel_exit" not in asked.errors
    assert sorted(w["signal"] for w in asked.warnings) == sorted(SIGNALS)
    assert_no_secret(asked)


# -- the watch itself, in-process (no network) ---------------------------------------


class FakeResult(Enum):
    """The shape of the SDK's export result enums."""

    SUCCESS = 0
    FAILURE = 1


@dataclass
class FakeResponse:
    status_code: int


def watch_with_log() -> tuple[Any, list[str], list[tuple[str, str]]]:
    from assistant_monitoring.otel.refusals import ExportWatch

    counted: list[str] = []
    said: list[tuple[str, str]] = []
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://{USER}:{PASSWORD}@collector:4318",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"https://{USER}@collector:4318/v1/logs?t=x#f",
    }
    watch = ExportWatch(
        counted.append,
        say=lambda signal, status, message, name: said.append((name, message)),
        environ=environ,
    )
    return watch, counted, said


def test_labels_are_a_closed_set_of_code_names() -> None:
    from assistant_monitoring.metrics.labels import CODE_NAME
    from assistant_monitoring.otel.refusals import operation

    assert operation("traces", 429) == "otel_traces_http_429"
    assert operation("logs", 418) == "otel_logs_http_4xx"
    assert operation("metrics", 599) == "otel_metrics_http_5xx"
    assert operation("metrics", 302) == "otel_metrics_http_3xx"
    assert operation("traces", 999) == "otel_traces_http_other"
    assert operation("traces", None) == "otel_traces_no_response"
    assert operation("traces", None, seen=False) == "otel_traces_failed"
    names = {operation(s, code) for s in SIGNALS for code in [None, *range(100, 1000)]}
    assert len(names) < 60
    assert all(CODE_NAME(name) for name in names)


def test_one_warning_per_signal_and_status_and_every_failure_counted() -> None:
    watch, counted, said = watch_with_log()

    def refused(status: int, result: FakeResult = FakeResult.FAILURE) -> Any:
        def export() -> FakeResult:
            watch.on_response(FakeResponse(status))
            return result

        return export

    for _ in range(3):
        assert watch.run("traces", refused(500)) == FakeResult.FAILURE
    watch.run("logs", refused(500))
    watch.run("traces", refused(503))
    assert watch.run("traces", refused(200, FakeResult.SUCCESS)) == FakeResult.SUCCESS
    # A redirect the exporter took for success delivered nothing.
    assert watch.run("traces", refused(308, FakeResult.SUCCESS)) == FakeResult.FAILURE
    assert watch.run("metrics", lambda: FakeResult.FAILURE) == FakeResult.FAILURE
    assert counted == [
        *["otel_traces_http_500"] * 3,
        "otel_logs_http_500",
        "otel_traces_http_503",
        "otel_traces_http_3xx",
        "otel_metrics_no_response",
    ]
    assert [name for name, _ in said] == [
        "otel_traces_http_500",
        "otel_logs_http_500",
        "otel_traces_http_503",
        "otel_traces_http_3xx",
        "otel_metrics_no_response",
    ]
    first = said[0][1]
    assert "https://collector:4318/v1/traces answered HTTP 500" in first
    assert "https://collector:4318/v1/logs?<query hidden> answered HTTP 500" in said[1][1]
    for _, message in said:
        assert USER not in message
        assert PASSWORD not in message
        assert "t=x" not in message


def test_a_refused_call_left_at_the_deadline_is_counted_once() -> None:
    watch, counted, said = watch_with_log()
    answered, release = threading.Event(), threading.Event()

    def retrying() -> FakeResult:
        watch.on_response(FakeResponse(429))
        answered.set()
        release.wait(10)  # waiting out a Retry-After
        return FakeResult.FAILURE

    def waiting() -> FakeResult:
        answered.wait(10)
        release.wait(10)  # no answer yet
        return FakeResult.FAILURE

    threads = [
        threading.Thread(target=watch.run, args=("logs", retrying)),
        threading.Thread(target=watch.run, args=("traces", waiting)),
    ]
    for thread in threads:
        thread.start()
    assert answered.wait(10)
    assert watch.abandon() == {"logs"}, "only a refusal explains a late export"
    assert counted == ["otel_logs_http_429"]
    release.set()
    for thread in threads:
        thread.join(10)
    # The refused call ending later is not counted again; the other one ends now.
    assert counted == ["otel_logs_http_429", "otel_traces_no_response"]
    assert len(said) == 2
