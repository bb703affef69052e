"""The CLI in-process: global options, config commands, monitor logs, error handling."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from loguru import logger
from typer.testing import CliRunner

from assistant.cli import app
from assistant_monitoring.logs import configure_logging
from tests.conftest import run_main

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert out.strip() == "assistant 0.1.0"


def test_help_lists_groups_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for text in ("--profile", "--debug", "--no-color", "monitor", "config", "Exit codes"):
        assert text in out


def test_config_show_json_masks_secrets_and_names_sources(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("LLM_API_KEY", "sk-ant-api03-supersecretvalue0000000")
    result = invoke("config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert "supersecretvalue" not in result.output
    document = json.loads(result.output)
    assert document["profile"] == "test"
    assert document["env_file"].endswith(".env.test")
    key = document["settings"]["LLM_API_KEY"]
    assert key == {"group": "llm", "value": "********", "source": "environment"}
    assert document["settings"]["ASSISTANT_DATA_DIR"]["value"] == str(data_dir)
    assert document["settings"]["LOG_LEVEL"]["source"] == ".env.test"


def test_config_show_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", "sk-ant-api03-supersecretvalue0000000")
    result = invoke("--no-color", "config", "show")
    assert result.exit_code == 0, result.output
    assert "Profile test" in result.output
    assert "LLM_API_KEY" in result.output
    assert "********" in result.output
    assert "supersecretvalue" not in result.output


def test_config_check_valid_and_invalid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "config", "check")
    assert code == 0
    assert "profile 'test' is valid" in out
    monkeypatch.setenv("LLM_TEMPERATURE", "5")
    monkeypatch.setenv("DATABASE_MAX_CONNECTIONS", "0")
    code, out, err = run_main(capsys, "config", "check")
    assert code == 2
    assert "LLM_TEMPERATURE: must be <= 2 (got '5')" in err
    assert "DATABASE_MAX_CONNECTIONS: must be >= 1 (got '0')" in err
    assert "Traceback" not in err


def test_config_check_json_lists_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_TOKENS", "999999")
    result = invoke("config", "check", "--json")
    assert result.exit_code == 2
    assert json.loads(result.output) == {
        "valid": False,
        "problems": ["LLM_MAX_TOKENS: must be <= 100000 (got '999999')"],
    }


def test_config_check_other_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("config", "check", "--profile", "staging", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["profile"] == "staging"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-e", "prod", "config", "show"), "Unknown profile 'prod'"),
        (("config", "check", "--profile", "nope"), "Unknown profile 'nope'"),
    ],
)
def test_bad_profile_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = run_main(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_profile_file_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    code, _, err = run_main(capsys, "-e", "production", "config", "check")
    assert code == 2
    assert ".env.production, which does not exist" in err


def test_every_command_validates_settings_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    code, _, err = run_main(capsys, "monitor", "logs")
    assert code == 2
    assert "LOG_LEVEL: must be" in err


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    code, _, err = run_main(capsys, "--debug", "monitor", "logs")
    assert code == 2
    assert "Traceback" in err


def write_logs(data_dir: Path) -> None:
    configure_logging(
        log_dir=data_dir / "logs",
        level="DEBUG",
        console_level="CRITICAL",
        environment="test",
        version="0",
        max_bytes=1 << 20,
        max_files=3,
        color=False,
    )
    for number in range(30):
        logger.bind(conversation_id="c-odd" if number % 2 else "c-even").info("step {}", number)
    try:
        raise KeyError("missing")
    except KeyError:
        logger.bind(conversation_id="c-odd").exception("lookup failed")
    logger.remove()


def test_monitor_logs_shows_last_lines(data_dir: Path) -> None:
    write_logs(data_dir)
    result = invoke("--no-color", "monitor", "logs", "-n", "3")
    assert result.exit_code == 0, result.output
    lines = [text for text in result.output.splitlines() if not text.startswith("    ")]
    assert len(lines) == 3
    assert "step 28" in lines[0]
    assert "ERROR" in lines[2]
    assert "lookup failed" in lines[2]
    assert "KeyError: 'missing'" in result.output


def test_monitor_logs_filters_and_json(data_dir: Path) -> None:
    write_logs(data_dir)
    result = invoke("monitor", "logs", "--level", "error", "--json")
    assert result.exit_code == 0, result.output
    (only,) = [json.loads(line) for line in result.output.splitlines()]
    assert only["msg"] == "lookup failed"
    result = invoke("monitor", "logs", "--conversation", "c-even", "--json", "-n", "100")
    entries = [json.loads(line) for line in result.output.splitlines()]
    assert len(entries) == 15
    assert {e["conversation_id"] for e in entries} == {"c-even"}
    result = invoke("monitor", "logs", "--grep", "STEP 7", "--json")
    assert [json.loads(line)["msg"] for line in result.output.splitlines()] == ["step 7"]
    result = invoke("monitor", "logs", "--since", "1h", "--json", "-n", "1000")
    assert len(result.output.splitlines()) == 31


def test_monitor_logs_bad_options(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_logs(data_dir)
    code, _, err = run_main(capsys, "monitor", "logs", "--since", "yesterday-ish")
    assert code == 2
    assert "--since: expected a duration" in err
    code, _, err = run_main(capsys, "monitor", "logs", "--level", "loud")
    assert code == 2
    assert "--level: expected one of" in err
    code, _, err = run_main(capsys, "monitor", "logs", "--file", "/nonexistent/x.jsonl")
    assert code == 2
    assert "does not exist" in err


def test_monitor_logs_without_a_log_dir(data_dir: Path) -> None:
    result = invoke("monitor", "logs")
    assert result.exit_code == 0
    assert "No logs yet" in result.output
    assert not (data_dir / "logs").exists(), "reading logs must not create them"


def test_monitor_logs_counts_bad_lines(data_dir: Path) -> None:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True)
    (log_dir / "assistant.jsonl").write_text(
        '{"ts":"2026-11-23T12:00:00.000000Z","level":"INFO","msg":"ok","logger":"t"}\ngarbage\n'
    )
    result = invoke("monitor", "logs")
    assert result.exit_code == 0
    assert "ok" in result.output
    assert "skipped 1 malformed or partial line" in result.output


def test_no_color_env_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    from assistant_monitoring.cli.state import reset_state

    assert reset_state().color is False
    assert os.environ["NO_COLOR"] == "1"
