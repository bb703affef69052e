"""Our code imports no dependency's private modules, and pins no dependency below a
release because of them (issue 21: uvicorn was held below 0.55 by a protocol
subclass that used its internals).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO_ROOT

OURS = {"assistant", "assistant_monitoring", "tests", "benchmarks"}
# OpenTelemetry Python publishes its logs API, SDK and exporters only under these
# names while the logs signal is marked development; its own documentation imports
# them so (opentelemetry.io, "Logs" in the Python instrumentation guide).
DOCUMENTED_PRIVATE = {
    "opentelemetry._logs",
    "opentelemetry.sdk._logs",
    "opentelemetry.sdk._logs.export",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
}


def private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names = []
        else:
            continue
        for module in modules:
            if module.split(".")[0] in OURS or module in DOCUMENTED_PRIVATE:
                continue
            parts = module.split(".") + names
            if any(part.startswith("_") and not part.startswith("__") for part in parts):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {module} {names}")
    return found


def test_no_private_module_or_name_of_a_dependency_is_imported() -> None:
    found: list[str] = []
    for package in ("assistant", "assistant_monitoring"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found += private_imports(path)
    assert found == []


def _private_names_we_define(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)  # dataclass fields set by keyword, and the like
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def test_no_private_attribute_of_a_dependency_is_used() -> None:
    # An attribute with a leading underscore that none of our code defines is some
    # dependency's internal (uvicorn's `_captured_signals` and
    # `_unset_keepalive_if_required` were used so).
    paths = [
        path
        for package in ("assistant", "assistant_monitoring")
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    ]
    ours = _private_names_we_define(paths)
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in ours
            ):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: .{node.attr}")
    assert found == []


def test_no_dependency_is_held_below_a_release() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    capped = re.findall(r'"(uvicorn|starlette|httptools)[^"]*<[^"]*"', dependencies)
    assert capped == [], capped
