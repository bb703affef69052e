"""The strict .env parser: what it accepts, and a clear error for what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant_monitoring.errors import ProfileError
from assistant_monitoring.settings.envfile import parse_env_text, read_env_file


def test_parses_comments_exports_quotes_and_inline_comments() -> None:
    text = """
# comment
LOG_LEVEL=INFO
export LLM_MODEL=claude-sonnet-4-5
LLM_BASE_URL = http://127.0.0.1:8089  # the stub
QUOTED="two\\nlines"
SINGLE='raw \\n kept'
HASH_IN_VALUE=abc#def
EMPTY=
"""
    assert parse_env_text(text) == {
        "LOG_LEVEL": "INFO",
        "LLM_MODEL": "claude-sonnet-4-5",
        "LLM_BASE_URL": "http://127.0.0.1:8089",
        "QUOTED": "two\nlines",
        "SINGLE": "raw \\n kept",
        "HASH_IN_VALUE": "abc#def",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("JUST_A_WORD", "expected KEY=VALUE"),
        ("1BAD=x", "'1BAD' is not a valid variable name"),
        ('KEY="unterminated', "unterminated"),
        ('KEY="a" trailing', "unexpected text after the closing quote"),
    ],
)
def test_malformed_line_names_file_and_line(line: str, problem: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_env_text(f"OK=1\n{line}\n", source=".env.test")
    assert f".env.test:2: {problem}" in str(caught.value)


def test_malformed_line_never_echoes_a_key() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_env_text("LLM_API_KEY sk-ant-api03-abcdefghijklmnopqrstuv\n", source="f")
    assert "abcdefghijklmnop" not in str(caught.value)


def test_unreadable_files_have_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="file not found"):
        read_env_file(tmp_path / "missing")
    with pytest.raises(ProfileError, match="is a directory"):
        read_env_file(tmp_path)
    binary = tmp_path / "binary"
    binary.write_bytes(b"KEY=\xff\xfe\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        read_env_file(binary)
