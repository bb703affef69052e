"""The web dashboard in a real headless Chromium: it loads, fills in, and logs no error."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import REPO_ROOT, installed_assistant, require_tool, subprocess_env
from tests.test_serve import free_port, get

ARTIFACTS = REPO_ROOT / "test-artifacts"


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=8000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dashboard_page_in_chromium(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = require_tool("chromium")
    data_dir.mkdir(parents=True)
    with sqlite3.connect(data_dir / "assistant.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    inst = Instrumentation(MetricsRegistry())
    for number in range(30):
        inst.metrics.pipeline_runs.labels("failure" if number % 10 == 0 else "success").inc()
        inst.metrics.pipeline_duration.observe(0.1 + number / 200)
        with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
            call.usage(input=50, output=20)
    store = MetricsStore(data_dir / "monitoring.db")
    MetricsRuntime(inst, store).flush()
    store.close()
    with StubLLMServer() as stub:
        monkeypatch.setenv("LLM_BASE_URL", stub.url)
        monkeypatch.setenv("LLM_API_KEY", "sk-test-0000000000000000")
        monkeypatch.setenv("HEALTH_DISK_DEGRADED_FREE_PERCENT", "0")
        monkeypatch.setenv("HEALTH_DISK_UNHEALTHY_FREE_PERCENT", "0")
        monkeypatch.setenv("HEALTH_MEMORY_DEGRADED_PERCENT", "100")
        monkeypatch.setenv("HEALTH_MEMORY_UNHEALTHY_PERCENT", "100")
        port = free_port()
        server = subprocess.Popen(
            [installed_assistant(), "monitor", "serve", "--port", str(port)],
            env=subprocess_env(),
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/dashboard"
        try:
            for _ in range(100):
                try:
                    get(f"http://127.0.0.1:{port}/live")
                    break
                except OSError:
                    time.sleep(0.1)
            dom = chromium(binary, tmp_path / "profile-dom", "--dump-dom", url)
            shot = tmp_path / "dashboard.png"
            picture = chromium(
                binary,
                tmp_path / "profile-shot",
                f"--screenshot={shot}",
                "--window-size=1280,900",
                url,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'id="status" class="pass">PASS<' in page, page[:3000]
    assert page.count('class="bar"') >= 1, "the runs chart has bars"
    assert "claude-haiku-4-5" in page
    assert "30 runs" in page
    console = [
        line for line in dom.stderr.splitlines() + picture.stderr.splitlines() if "CONSOLE" in line
    ]
    assert console == [], f"console messages: {console}"
    assert shot.exists()
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "web-dashboard.png")
