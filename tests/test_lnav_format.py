"""The shipped lnav format reads our files: checked with a real lnav."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

from loguru import logger

from assistant_monitoring.logs import configure_logging, log_context
from tests.conftest import require_tool

FORMAT = resources.files("assistant_monitoring") / "formats" / "assistant_jsonl.json"


def test_format_file_is_valid_json_naming_our_fields() -> None:
    document = json.loads(FORMAT.read_text())
    spec = document["assistant_jsonl"]
    assert spec["timestamp-field"] == "ts"
    assert spec["level-field"] == "level"
    assert spec["body-field"] == "msg"


def test_lnav_parses_our_log_lines(tmp_path: Path) -> None:
    lnav = require_tool("lnav")
    log_dir = tmp_path / "logs"
    configure_logging(
        log_dir=log_dir,
        level="DEBUG",
        console_level="CRITICAL",
        environment="test",
        version="0",
        max_bytes=1 << 20,
        max_files=2,
        color=False,
    )
    with log_context(conversation_id="conv-42"):
        logger.info("first")
        try:
            raise ValueError("second")
        except ValueError:
            logger.exception("it failed")
    logger.remove()
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    subprocess.run([lnav, "-i", str(FORMAT)], env=env, check=True, capture_output=True)
    result = subprocess.run(
        [
            lnav,
            "-n",
            "-c",
            ";SELECT log_level, log_body, conversation_id FROM assistant_jsonl",
            str(log_dir / "assistant.jsonl"),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows == [["info", "first", "conv-42"], ["error", "it", "failed", "conv-42"]]
