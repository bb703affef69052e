"""deploy/: promtool checks, and a real Prometheus scraping a real `assistant monitor serve`.

The integration test starts Prometheus from the system packages on loopback with a
1 s scrape interval, asserts counters and a histogram_quantile through its query
API, and runs every PromQL expression of the Grafana dashboard against it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import (
    REPO_ROOT,
    flush_into_store,
    installed_assistant,
    require_tool,
    subprocess_env,
)
from tests.test_serve import free_port, get

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "assistant-overview.json"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_check_config_rules_and_unit_tests() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "recording_rules.yml", "alert_rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    tests = promtool("test", "rules", "tests.yml")
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_every_alert_has_a_unit_test_severity_and_annotations() -> None:
    alerts = (PROMETHEUS_DIR / "alert_rules.yml").read_text()
    tests = (PROMETHEUS_DIR / "tests.yml").read_text()
    names = [
        line.split(":", 1)[1].strip()
        for line in alerts.splitlines()
        if line.strip().startswith("- alert:")
    ]
    assert len(names) == 8
    for name in names:
        assert f"alertname: {name}" in tests, f"{name} has no promtool unit test"
    assert alerts.count("severity:") == len(names)
    assert alerts.count("description:") == len(names)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def query(base: str, expr: str) -> dict[str, Any]:
    status, _, body = get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    document: dict[str, Any] = json.loads(body)
    assert status == 200, (expr, document)
    return document


def start_prometheus(config: Path, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """A real Prometheus server on 127.0.0.1:``port`` with ``config``, its TSDB in tmp."""
    return subprocess.Popen(
        [
            require_tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_real_prometheus_scrapes_the_monitor(tmp_path: Path, data_dir: Path) -> None:
    require_tool("prometheus")
    inst = Instrumentation(MetricsRegistry())
    for number in range(40):
        inst.metrics.pipeline_runs.labels("failure" if number % 8 == 0 else "success").inc()
        inst.metrics.pipeline_duration.observe(0.3 if number % 2 else 0.7)
        with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
            call.usage(input=100, output=25)
    flush_into_store(data_dir, inst)
    monitor_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    recording, alerting = PROMETHEUS_DIR / "recording_rules.yml", PROMETHEUS_DIR / "alert_rules.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{recording}', '{alerting}']\n"
        "scrape_configs:\n"
        "  - job_name: assistant\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{monitor_port}']}}]\n"
    )
    monitor = subprocess.Popen(
        [installed_assistant(), "monitor", "serve", "--port", str(monitor_port)],
        env=subprocess_env(LLM_API_KEY="k-00000000"),
        stderr=subprocess.DEVNULL,
    )
    server = start_prometheus(config, tmp_path, prometheus_port)
    base = f"http://127.0.0.1:{prometheus_port}"
    try:
        result: list[dict[str, Any]] = []
        for _ in range(120):
            time.sleep(0.5)
            try:
                result = query(base, 'assistant_pipeline_runs_total{status="success"}')["data"][
                    "result"
                ]
            except OSError:
                continue
            if result:
                break
        assert result, "Prometheus never scraped the monitor"
        assert float(result[0]["value"][1]) == 35
        failures = query(base, 'assistant_pipeline_runs_total{status="failure"}')["data"]["result"]
        assert float(failures[0]["value"][1]) == 5
        median = query(
            base,
            "histogram_quantile(0.5, sum by (le) (assistant_pipeline_duration_seconds_bucket))",
        )
        value = float(median["data"]["result"][0]["value"][1])
        assert 0.25 <= value <= 0.5, value  # half the runs took 0.3 s: the 0.25..0.5 bucket
        tokens = query(base, 'sum(assistant_llm_tokens_total{type="input"})')["data"]["result"]
        assert float(tokens[0]["value"][1]) == 4000
        for expr in dashboard_expressions():
            document = query(base, expr)
            assert document["status"] == "success", (expr, document)
        up = query(base, 'up{job="assistant"}')["data"]["result"]
        assert float(up[0]["value"][1]) == 1
    finally:
        for process in (server, monitor):
            process.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        monitor.wait(timeout=30)


TRICKY_HELP = 'Help with "quotes", a \\ backslash\nand a newline.'


class _StaticExposition(threading.Thread):
    """Serves fixed bytes as Prometheus text 0.0.4: Prometheus 2.x asks a target for
    OpenMetrics first, so this is how its text parser gets to read our text format."""

    def __init__(self, body: bytes) -> None:
        super().__init__(daemon=True)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.05)


def test_help_text_round_trips_through_prometheus_parsers(tmp_path: Path, data_dir: Path) -> None:
    """HELP with `"`, `\\` and a newline, as Prometheus reads it in both formats."""
    require_tool("prometheus")
    inst = Instrumentation(MetricsRegistry())
    inst.registry.counter("app_tricky_total", TRICKY_HELP, []).inc()
    inst.registry.gauge("app_tricky_gauge", TRICKY_HELP, []).set(2)
    flush_into_store(data_dir, inst)
    monitor_port, prometheus_port = free_port(), free_port()
    monitor = subprocess.Popen(
        [installed_assistant(), "monitor", "serve", "--port", str(monitor_port)],
        env=subprocess_env(LLM_API_KEY="k-00000000"),
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                status, _, text = get(f"http://127.0.0.1:{monitor_port}/metrics")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200
        static = _StaticExposition(text.replace(b"app_tricky", b"app_text_tricky"))
        static.start()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: openmetrics\n"  # our server, negotiated: OpenMetrics
            f"    static_configs: [{{targets: ['127.0.0.1:{monitor_port}']}}]\n"
            "  - job_name: text\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{static.port}']}}]\n"
        )
        server = start_prometheus(config, tmp_path, prometheus_port)
        base = f"http://127.0.0.1:{prometheus_port}"
        try:
            metadata: dict[str, Any] = {}
            wanted = {"app_tricky", "app_tricky_gauge", "app_text_tricky_total"}
            for _ in range(120):
                time.sleep(0.5)
                try:
                    metadata = json.loads(get(f"{base}/api/v1/metadata")[2])["data"]
                except (OSError, ValueError, KeyError):
                    continue
                if wanted <= set(metadata):
                    break
            found = {name: metadata.get(name, [{}])[0].get("help") for name in wanted}
            assert found == dict.fromkeys(wanted, TRICKY_HELP), found
            assert metadata["app_tricky"][0]["type"] == "counter"
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            static.server.shutdown()
            static.server.server_close()
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(timeout=30)


@pytest.mark.parametrize(
    "path",
    [
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/alertmanager/alertmanager.yml",
    ],
)
def test_example_configs_exist(path: str) -> None:
    assert (REPO_ROOT / path).read_text().strip()
