"""The web dashboard in a real headless Chromium: it loads, fills in, and logs no error."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import (
    REPO_ROOT,
    flush_into_store,
    installed_assistant,
    make_healthy,
    require_tool,
    subprocess_env,
)
from tests.test_serve import free_port, get, stop_server
from tests.test_usage import seed

ARTIFACTS = REPO_ROOT / "test-artifacts"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_dashboard_page_in_chromium(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = require_tool("chromium")
    inst = Instrumentation(MetricsRegistry())
    for number in range(30):
        inst.metrics.pipeline_runs.labels("failure" if number % 10 == 0 else "success").inc()
        inst.metrics.pipeline_duration.observe(0.1 + number / 200)
        with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
            call.usage(input=50, output=20)
    now = time.time()
    # Usage: runs in three different hours today-ish and on four different days.
    hours_ago = (0.2, 2.1, 5.3)
    days_ago = (0, 3, 6, 12)
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        flush_into_store(data_dir, inst)
        seed(
            data_dir,
            *({"started_at": now - h * 3600} for h in hours_ago),
            *({"started_at": now - d * 86400 - 7200, "cost_usd": 0.5 + d} for d in days_ago[1:]),
        )
        port = free_port()
        server = subprocess.Popen(
            [installed_assistant(), "monitor", "serve", "--port", str(port)],
            env=subprocess_env(MONITOR_DAILY_BUDGET_USD="5", MONITOR_TIMEZONE="UTC"),
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    get(base + "/live")
                    break
                except OSError:
                    time.sleep(0.1)
            expected = {
                "runs-chart": len(_api(base, "/api/timeseries?period=1h")["points"]),
                "latency-chart": len(_api(base, "/api/timeseries?period=1h")["points"]),
                "tokens-chart": len(_api(base, "/api/usage?group=hourly&since=24h")["rows"]),
                "cost-chart": len(_api(base, "/api/usage?group=daily")["rows"]),
            }
            pages = {
                scheme: browse(binary, base + "/dashboard", tmp_path, scheme)
                for scheme in ("dark", "light")
            }
        finally:
            stop_server(server)
    assert expected["runs-chart"] >= 60, "an hour of minutes"
    assert expected["cost-chart"] == len(days_ago), "a point per day with runs"
    assert expected["tokens-chart"] >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    backgrounds = set()
    for scheme, seen in pages.items():
        assert "PASS" in seen.text
        assert "claude-haiku-4-5" in seen.text
        assert "30 runs" in seen.text
        assert "today: $" in seen.text, "the budget line"
        assert seen.messages == [], f"console messages: {seen.messages}"
        assert seen.points == expected, scheme
        assert seen.latency_values > 0, "p50/p95 drawn from the minute sketches"
        assert seen.shot.stat().st_size > 10_000
        backgrounds.add(seen.background)
        shutil.copy(seen.shot, ARTIFACTS / f"web-dashboard-{scheme}.png")
    assert len(backgrounds) == 2, "dark and light follow prefers-color-scheme"


def _api(base: str, path: str) -> dict[str, Any]:
    status, _, body = get(base + path)
    assert status == 200, (path, body)
    document: dict[str, Any] = json.loads(body)
    return document


@dataclass
class Seen:
    messages: list[str]
    text: str
    shot: Path
    points: dict[str, int]
    latency_values: int
    background: str


def browse(binary: str, url: str, tmp_path: Path, scheme: str) -> Seen:
    """Load the page in Chromium (driven by Playwright), wait until it is filled in."""
    playwright = pytest.importorskip("playwright.sync_api")
    shot = tmp_path / f"dashboard-{scheme}.png"
    messages: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200}, color_scheme=scheme)
            page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
            page.goto(url)
            page.wait_for_selector("#status.pass", timeout=15_000)
            page.wait_for_function(
                "document.getElementById('models').textContent.includes('claude')"
                " && Object.keys(window.charts).length === 4",
                timeout=15_000,
            )
            points = page.evaluate(
                "Object.fromEntries(Object.entries(window.charts)"
                ".map(([id, chart]) => [id, chart.data[0].length]))"
            )
            latency_values = page.evaluate(
                "window.charts['latency-chart'].data[1].filter((v) => v != null).length"
            )
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            page.screenshot(path=str(shot), full_page=True)
            text = page.inner_text("body")
        finally:
            browser.close()
    return Seen(messages, text, shot, points, latency_values, background)
