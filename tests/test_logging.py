"""The loguru configuration: JSON shape, sinks, rotation, and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from loguru import logger

from assistant_monitoring.errors import LogDirectoryError
from assistant_monitoring.logs import (
    configure_logging,
    log_classification,
    log_context,
    log_error,
    log_pipeline_summary,
)
from assistant_monitoring.logs.writer import RotatingFileWriter, rotated_path
from assistant_monitoring.redact import register_secret


def setup(log_dir: Path | None, **overrides: object) -> io.StringIO:
    console = io.StringIO()
    options: dict[str, object] = {
        "log_dir": log_dir,
        "level": "DEBUG",
        "console_level": "DEBUG",
        "environment": "test",
        "version": "9.9.9",
        "max_bytes": 1 << 20,
        "max_files": 5,
        "color": False,
        "stream": console,
    }
    options.update(overrides)
    configure_logging(**options)  # type: ignore[arg-type]
    return console


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_lines_are_flat_json_with_the_standard_fields(tmp_path: Path) -> None:
    setup(tmp_path)
    with log_context(conversation_id="c-1", message_id="m-1"):
        logger.info("hello {}", "world")
    (line,) = read_lines(tmp_path / "assistant.jsonl")
    assert line["msg"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == __name__
    assert line["service"] == "assistant"
    assert line["environment"] == "test"
    assert line["version"] == "9.9.9"
    assert line["pid"] == os.getpid()
    assert line["conversation_id"] == "c-1"
    assert line["message_id"] == "m-1"
    ts = str(line["ts"])
    assert ts.endswith("Z")
    assert len(ts) == len("2026-11-23T13:40:01.123456Z")


def test_exception_has_its_own_field_and_errors_go_to_error_file(tmp_path: Path) -> None:
    setup(tmp_path)
    logger.info("fine")
    try:
        raise RuntimeError("database went away")
    except RuntimeError as error:
        log_error(error, context="persist", conversation_id="c-9")
    main = read_lines(tmp_path / "assistant.jsonl")
    errors = read_lines(tmp_path / "error.jsonl")
    assert [line["msg"] for line in main] == [
        "fine",
        "persist: RuntimeError: database went away",
    ]
    assert len(errors) == 1
    error_line = errors[0]
    assert error_line["level"] == "ERROR"
    assert error_line["exc_type"] == "RuntimeError"
    assert error_line["context"] == "persist"
    assert error_line["conversation_id"] == "c-9"
    assert error_line["logger"] == __name__
    assert "Traceback" in str(error_line["exception"])
    assert "RuntimeError: database went away" in str(error_line["exception"])


def test_level_filters_each_sink(tmp_path: Path) -> None:
    console = setup(tmp_path, level="INFO", console_level="WARNING")
    logger.debug("dropped everywhere")
    logger.info("file only")
    logger.warning("both")
    assert [line["msg"] for line in read_lines(tmp_path / "assistant.jsonl")] == [
        "file only",
        "both",
    ]
    assert "both" in console.getvalue()
    assert "file only" not in console.getvalue()


def test_structured_event_helpers(tmp_path: Path) -> None:
    setup(tmp_path)
    log_pipeline_summary(
        conversation_id="c",
        message_id="m",
        status="success",
        total_seconds=0.25,
        stage_seconds={"context": 0.01, "generate": 0.24},
    )
    log_pipeline_summary(
        conversation_id="c",
        message_id="m2",
        status="failure",
        total_seconds=0.5,
        stage_seconds={"context": 0.01},
        error_type="ProviderUnavailable",
        failed_stage="generate",
    )
    log_classification(
        classifier="intent", label="question", confidence=0.93, duration_seconds=0.001
    )
    summary, failed, classification = read_lines(tmp_path / "assistant.jsonl")
    assert summary["event"] == "pipeline_summary"
    assert summary["level"] == "INFO"
    assert summary["duration_ms"] == 250.0
    assert summary["stages_ms"] == {"context": 10.0, "generate": 240.0}
    assert "error_type" not in summary
    assert failed["level"] == "ERROR"
    assert failed["error_type"] == "ProviderUnavailable"
    assert failed["failed_stage"] == "generate"
    assert classification["level"] == "DEBUG"
    assert classification["label"] == "question"
    assert classification["logger"] == __name__


def test_stdlib_logging_is_routed_to_the_same_files(tmp_path: Path) -> None:
    setup(tmp_path)
    logging.getLogger("some.library").warning("from the stdlib")
    (line,) = read_lines(tmp_path / "assistant.jsonl")
    assert line["msg"] == "from the stdlib"
    assert line["level"] == "WARNING"
    assert line["stdlib_logger"] == "some.library"


def test_configuring_twice_leaves_one_set_of_sinks(tmp_path: Path) -> None:
    setup(tmp_path)
    setup(tmp_path)
    logger.info("once")
    assert len(read_lines(tmp_path / "assistant.jsonl")) == 1


KEYS = {
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-xyz",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.payload.signature",
    "configured": "corp-gateway-key-7f3a9c2e",
}


def test_secrets_are_redacted_in_every_path_and_every_sink(tmp_path: Path) -> None:
    register_secret(KEYS["configured"])  # what load_settings does for LLM_API_KEY
    console = setup(tmp_path)
    logger.info(f"message with {KEYS['openai']}")
    logger.info("formatted arg {}", KEYS["anthropic"])
    logger.info(f"header Authorization: Bearer {KEYS['bearer']}")
    logger.bind(api_key=KEYS["configured"], nested={"key": KEYS["openai"]}).info("bound context")
    with log_context(conversation_id=KEYS["anthropic"]):
        logger.info("contextualized")
    logging.getLogger("httpx").error("stdlib with %s", KEYS["configured"])
    try:
        raise ValueError(f"rejected key {KEYS['openai']} and {KEYS['configured']}")
    except ValueError as error:
        log_error(error, context="generate")
    try:
        raise ConnectionError(f"x-api-key: {KEYS['configured']}")
    except ConnectionError:
        logger.exception("while calling")
    outputs = {
        "console": console.getvalue(),
        "assistant.jsonl": (tmp_path / "assistant.jsonl").read_text(),
        "error.jsonl": (tmp_path / "error.jsonl").read_text(),
    }
    for sink, text in outputs.items():
        for name, key in KEYS.items():
            assert key not in text, f"{name} key leaked into {sink}"
        assert "[REDACTED]" in text, sink
    assert outputs["assistant.jsonl"].count("[REDACTED]") >= 9


def test_unwritable_log_dir_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        log_dir = blocker / "logs"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        log_dir = locked / "logs"
    with pytest.raises(LogDirectoryError, match="LOG_DIR: cannot write logs to"):
        setup(log_dir)


def test_single_process_rotation_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    writer = RotatingFileWriter(path, max_bytes=1000, max_files=3)
    for number in range(2000):
        writer.write(f'{{"n":{number}}}\n'.encode())
    writer.close()
    files = sorted(tmp_path.glob("app.jsonl*"))
    assert files == [path, rotated_path(path, 1), rotated_path(path, 2)]
    kept = [json.loads(line)["n"] for f in reversed(files) for line in f.read_text().splitlines()]
    assert kept == list(range(kept[0], 2000)), "the newest lines are kept, in order"
    assert all(f.stat().st_size <= 1000 + 12 for f in files)


def test_write_failure_never_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logs" / "app.jsonl"
    writer = RotatingFileWriter(path, max_bytes=10_000, max_files=2)
    writer.close()  # the descriptor is gone: the next write fails
    writer.write(b"lost?\n")
    assert writer.failures == 1
    assert "cannot write log file" in capsys.readouterr().err
    writer.write(b"recovered\n")  # it reopened the file
    assert path.read_text().endswith("recovered\n")
    writer.close()
