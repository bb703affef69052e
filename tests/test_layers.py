"""The import contracts (pyproject.toml, [tool.importlinter]) hold, and catch a wrong import.

scripts/test.sh runs ``lint-imports`` before pytest; these tests make sure the
contracts are not vacuous: each wrong import below, made in a copy of the code,
breaks the contract that forbids it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO_ROOT / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold(tmp_path: Path) -> None:
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("assistant_monitoring/runs.py", "import rich", "Only the command line imports"),
        ("assistant/pipeline.py", "import typer", "Only the command line imports"),
        ("assistant_monitoring/health/checks.py", "import assistant.app", "never imports the"),
        (
            "assistant_monitoring/metrics/store.py",
            "import assistant_monitoring.alerts",
            "toolkit's layers",
        ),
        (
            "assistant_monitoring/errors.py",
            "import assistant_monitoring.settings",
            "toolkit's layers",
        ),
        ("assistant/pipeline.py", "import assistant.app", "The assistant's layers"),
        (
            "assistant_monitoring/usage/report.py",
            "import assistant_monitoring.cli",
            "toolkit's layers",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in ("assistant", "assistant_monitoring"):
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # the wrong import\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if "BROKEN" in row]
    assert any(contract in row for row in broken), done.stdout
