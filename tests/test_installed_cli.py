"""The installed `assistant` script, run as a user runs it (a few subprocess tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import installed_assistant, subprocess_env


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_assistant(), *args],
        capture_output=True,
        text=True,
        check=False,
        env=subprocess_env(**env),
        timeout=60,
    )


def test_version_and_python_dash_m() -> None:
    assert run("--version").stdout.strip() == "assistant 0.1.0"
    module = subprocess.run(
        [sys.executable, "-m", "assistant", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    assert module.stdout.strip() == "assistant 0.1.0"


def test_invalid_settings_exit_2_with_every_problem_and_no_traceback() -> None:
    result = run("config", "check", LLM_TEMPERATURE="5", LLM_PROVIDER="bard")
    assert result.returncode == 2
    assert "LLM_TEMPERATURE: must be <= 2 (got '5')" in result.stderr
    assert "LLM_PROVIDER: must be 'anthropic' or 'openai' (got 'bard')" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_error_exit_2() -> None:
    result = run("monitor", "logs", "--lines", "many")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_logs_round_trip_through_the_installed_cli(data_dir: Path) -> None:
    # config check logs its outcome; monitor logs reads it back.
    assert run("config", "check").returncode == 0
    result = run("monitor", "logs", "--json")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(entry["msg"].startswith("settings valid") for entry in entries)
    assert (data_dir / "logs" / "assistant.jsonl").exists()


def test_secret_never_printed_by_config_show() -> None:
    key = "sk-ant-api03-neverprintme000000000000000"
    result = run("config", "show", LLM_API_KEY=key)
    assert result.returncode == 0
    assert key not in result.stdout + result.stderr
    result = run("config", "show", "--json", LLM_API_KEY=key, LLM_TEMPERATURE="9")
    assert result.returncode == 2
    assert key not in result.stdout + result.stderr
