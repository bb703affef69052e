"""The web dashboard in a real headless Chromium: it loads, fills in, and logs no error."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

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
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        flush_into_store(data_dir, inst)
        port = free_port()
        server = subprocess.Popen(
            [installed_assistant(), "monitor", "serve", "--port", str(port)],
            env=subprocess_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{port}/dashboard"
        try:
            for _ in range(100):
                try:
                    get(f"http://127.0.0.1:{port}/live")
                    break
                except OSError:
                    time.sleep(0.1)
            messages, page_text, shot = browse(binary, url, tmp_path)
        finally:
            stop_server(server)
    assert "PASS" in page_text
    assert "claude-haiku-4-5" in page_text
    assert "30 runs" in page_text
    assert messages == [], f"console messages: {messages}"
    assert shot.exists()
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "web-dashboard.png")


def browse(binary: str, url: str, tmp_path: Path) -> tuple[list[str], str, Path]:
    """Load the page in Chromium (driven by Playwright), wait until it is filled in."""
    playwright = pytest.importorskip("playwright.sync_api")
    shot = tmp_path / "dashboard.png"
    messages: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
            page.goto(url)
            page.wait_for_selector("#status.pass", timeout=15_000)
            page.wait_for_selector("#runs-chart rect.bar", state="attached", timeout=15_000)
            page.wait_for_function(
                "document.getElementById('models').textContent.includes('claude')",
                timeout=15_000,
            )
            page.screenshot(path=str(shot))
            text = page.inner_text("body")
        finally:
            browser.close()
    return messages, text, shot
