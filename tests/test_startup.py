"""Start-up stays fast: `assistant --help` imports no heavy module.

anthropic and openai take ~0.8-1.8 s to import, pydantic(-settings) ~0.2 s, loguru
and rich tens of ms: none of them may be imported to print help or the version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import flush_into_store, subprocess_env

HEAVY = ("anthropic", "openai", "httpx", "pydantic", "pydantic_settings", "loguru", "rich")

PROBE = """
import json, sys
from assistant.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)), file=sys.stderr)
"""


def imported_top_level_modules(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=list(args))],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("monitor", "--help"), ("config", "--help")],
)
def test_help_and_version_import_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_top_level_modules(*args)
    assert "assistant" in modules
    leaked = sorted(set(HEAVY) & modules)
    assert leaked == [], f"`assistant {' '.join(args)}` imported {leaked}"


# What only `monitor serve` (and, for prometheus_client, an exposition) may import.
SERVER_ONLY = ("starlette", "uvicorn", "httptools", "anyio", "prometheus_client")


@pytest.mark.parametrize(
    "args",
    [
        ("monitor", "metrics", "--period", "1h"),
        ("monitor", "runs"),
        ("monitor", "breakers"),
        ("monitor", "health", "--json", "--check", "disk"),
        ("monitor", "logs", "-n", "1"),
        ("config", "check"),
        ("db", "migrate"),
        ("monitor", "serve", "--help"),
    ],
)
def test_only_serve_imports_the_http_stack(args: tuple[str, ...]) -> None:
    leaked = sorted(set(SERVER_ONLY) & imported_top_level_modules(*args))
    assert leaked == [], f"`assistant {' '.join(args)}` imported {leaked}"


def test_the_probe_sees_lazy_imports(data_dir: Path) -> None:
    # Without this, a probe that saw nothing would pass the test above.
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry

    inst = Instrumentation(MetricsRegistry())
    inst.metrics.pipeline_runs.labels("success").inc()
    data_dir.mkdir(parents=True)
    flush_into_store(data_dir, inst)
    modules = imported_top_level_modules("monitor", "metrics", "--format", "prometheus")
    assert "prometheus_client" in modules
    assert not {"starlette", "uvicorn"} & modules


def test_config_check_does_not_import_the_llm_sdks() -> None:
    modules = imported_top_level_modules("config", "check")
    assert "pydantic" in modules  # it did validate
    assert not {"anthropic", "openai"} & modules
