"""The terminal dashboard: frames rendered at a fixed size, --once, and a real terminal."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from assistant.cli import app
from assistant_monitoring.cli.dashboard_view import render_frame, sparkline
from assistant_monitoring.dashboard import take_snapshot
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.runs import RunRecord, RunStore, StageRecord
from assistant_monitoring.settings import load_settings
from tests.conftest import (
    flush_into_store,
    installed_assistant,
    require_tool,
    subprocess_env,
)


def fill(data_dir: Path) -> None:
    inst = Instrumentation(MetricsRegistry())
    for number in range(12):
        with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
            call.usage(input=100, output=40)
        inst.metrics.pipeline_runs.labels("failure" if number % 4 == 0 else "success").inc()
        inst.metrics.pipeline_duration.observe(0.2 + number / 100)
    flush_into_store(data_dir, inst)
    runs = RunStore(data_dir / "monitoring.db")
    runs.record(
        RunRecord(
            id="run_failed0001",
            started_at=time.time(),
            status="failure",
            stages=[StageRecord("generate", "failure", 1.0, 20.0, "ProviderUnavailable")],
            failed_stage="generate",
            error_type="ProviderUnavailable",
            error_message="Anthropic is unavailable (500)",
        )
    )
    runs.close()


def render(width: int, height: int, *, color: bool) -> str:
    settings = load_settings().settings
    snapshot = take_snapshot(settings, period="60m", health=None)
    console = Console(
        file=io.StringIO(), width=width, height=height, force_terminal=color, no_color=not color
    )
    console.print(render_frame(snapshot, width=width, height=height, profile="test"), height=height)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 4], 10) == " ▂▄█"
    assert sparkline([0, 0], 10) == "▁▁"
    assert len(sparkline(list(range(100)), 20)) == 20


def test_frame_fits_80x24_and_shows_every_panel(data_dir: Path) -> None:
    fill(data_dir)
    text = render(80, 24, color=False)
    lines = text.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    for title in ("health", "breakers", "activity", "models", "failures"):
        assert title in text
    assert "claude-haiku-4-5" in text
    assert "runs 12" in text
    assert "errors 25.0%" in text
    assert "generate: Provider" in text
    assert "\x1b[" not in text, "no color codes without color"


def test_frame_uses_a_bigger_screen(data_dir: Path) -> None:
    fill(data_dir)
    big = render(140, 45, color=True)
    assert "\x1b[" in big
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in big.splitlines()) > 100


def test_once_from_the_cli(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(data_dir)
    monkeypatch.setenv("LLM_API_KEY", "")  # health runs: the LLM check says why it fails
    result = CliRunner().invoke(app, ["--no-color", "monitor", "dashboard", "--once"])
    assert result.exit_code == 0, result.output
    assert "UNHEALTHY" in result.output
    assert "no API key" in result.output
    bad = CliRunner().invoke(app, ["monitor", "dashboard", "--once", "--period", "soon"])
    assert bad.exit_code != 0


def test_live_in_a_real_terminal_quits_on_q(data_dir: Path) -> None:
    tmux = require_tool("tmux")
    fill(data_dir)
    env = subprocess_env(TERM="xterm-256color")
    program = shlex.quote(installed_assistant())
    command = f"{program} monitor dashboard --refresh 0.3; echo EXITED $?; sleep 10"
    session = f"dash{int(time.time() * 1000) % 100000}"
    subprocess.run(
        [tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
        env=env,
        check=True,
    )
    try:
        screen = ""
        for _ in range(60):
            time.sleep(0.25)
            screen = subprocess.run(
                [tmux, "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "activity" in screen and "models" in screen:
                break
        assert "activity" in screen, screen
        assert "claude-haiku-4-5" in screen
        subprocess.run([tmux, "send-keys", "-t", session, "q"], check=True)
        for _ in range(40):
            time.sleep(0.25)
            screen = subprocess.run(
                [tmux, "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "EXITED" in screen:
                break
        assert "EXITED 0" in screen, screen
        assert "activity" not in screen, "the alternate screen is gone: the terminal is restored"
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], check=False, capture_output=True)
