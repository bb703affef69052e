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


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    # Notepad and other Windows editors start UTF-8 files with one.
    assert parse_env_text("\ufeffLOG_LEVEL=INFO\n") == {"LOG_LEVEL": "INFO"}
    path = tmp_path / ".env"
    path.write_bytes(b"\xef\xbb\xbfLOG_LEVEL=INFO\r\nLLM_MODEL=x\r\n")
    assert read_env_file(path) == {"LOG_LEVEL": "INFO", "LLM_MODEL": "x"}


def test_a_bom_later_in_the_file_is_shown_escaped() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_env_text("A=1\n\ufeffB=2\n", source="f")
    assert "f:2: '\\ufeffB' is not a valid variable name" in str(caught.value)


def test_utf16_files_say_how_to_fix_them(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    for data in ("LOG_LEVEL=INFO\n".encode("utf-16"), "LOG_LEVEL=INFO\n".encode("utf-16-le")):
        path.write_bytes(data)
        with pytest.raises(ProfileError) as caught:
            read_env_file(path)
        assert str(caught.value) == f"{path}: is UTF-16 text: save it as UTF-8"


def test_nul_characters_are_refused() -> None:
    with pytest.raises(ProfileError, match=r"^f:2: a NUL character"):
        parse_env_text("A=1\nB=x\x00y\n", source="f")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings(newline: str) -> None:
    text = newline.join(["A=1", "", "# c", 'B="two words"', "C=3 # c", ""])
    assert parse_env_text(text) == {"A": "1", "B": "two words", "C": "3"}
    with pytest.raises(ProfileError, match=r"^f:3: expected KEY=VALUE"):
        parse_env_text(newline.join(["A=1", "", "oops"]), source="f")


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])
def test_only_newlines_end_a_line(separator: str) -> None:
    # str.splitlines() also breaks at these, which split quoted values in two and
    # put line numbers out of step with the user's editor.
    assert parse_env_text(f'A="x{separator}y"\nB=2\n') == {"A": f"x{separator}y", "B": "2"}
    with pytest.raises(ProfileError, match=r"^f:2: "):
        parse_env_text(f"A=1{separator}\noops\n", source="f")


def test_inline_comments_and_export_forms() -> None:
    text = "A= # only a comment\nB=x\t# tab before\nC=#not-a-comment\nexport\tD=4\nexport=5\n"
    assert parse_env_text(text) == {
        "A": "",
        "B": "x",
        "C": "#not-a-comment",
        "D": "4",
        "export": "5",
    }


def test_duplicate_keys_last_one_wins() -> None:
    assert parse_env_text("A=1\nB=2\nA=3\n") == {"A": "3", "B": "2"}
    assert list(parse_env_text("A=1\nB=2\nA=3\n")) == ["A", "B"]


def test_text_after_a_quote_is_shortened_and_redacted() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_env_text(
            'LLM_API_KEY="x" sk-ant-api03-abcdefghijklmnopqrstuv' + "z" * 100, source="f"
        )
    message = str(caught.value)
    assert "abcdefghijklmnop" not in message
    assert len(message) < 150
