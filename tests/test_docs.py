"""The README documents every setting and the exit codes users script against."""

from __future__ import annotations

from assistant_monitoring.settings.model import env_names
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [name for name in env_names() if f"`{name}`" not in README]
    assert missing == []


def test_quick_start_has_the_two_commands() -> None:
    assert "scripts/demo.sh" in README
    assert "scripts/test.sh" in README
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_exit_codes_are_documented() -> None:
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |", "| 143 |"):
        assert code in README
