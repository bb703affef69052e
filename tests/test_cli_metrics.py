"""`assistant monitor metrics`: tables, JSON, exposition, empty windows, bad options."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import (
    flush_into_store,
    require_tool,
    run_assistant,
)

runner = CliRunner()


def record_some_runs(data_dir: Path) -> None:
    inst = Instrumentation(MetricsRegistry())
    for number in range(20):
        failed = number % 5 == 0
        try:
            with inst.pipeline_run():
                with inst.stage("context"):
                    pass
                with inst.stage("generate"), inst.llm_call("anthropic", "claude-haiku-4-5") as call:
                    call.first_token()
                    call.usage(input=100, output=50)
                    if failed:
                        raise TimeoutError("slow provider")
        except TimeoutError as error:
            inst.error(error, context="generate")
    with inst.llm_call("openai", "local-llama") as call:
        call.usage(input=10, output=10)
    with inst.db_query("insert"):
        pass
    flush_into_store(data_dir, inst)


def test_empty_store_says_no_data(data_dir: Path) -> None:
    result = runner.invoke(app, ["monitor", "metrics"])
    assert result.exit_code == 0, result.output
    assert "No data for the last 1h" in result.output
    assert not (data_dir / "monitoring.db").exists(), "reading must not create the store"


def test_json_report_has_stable_fields(data_dir: Path) -> None:
    record_some_runs(data_dir)
    result = runner.invoke(app, ["monitor", "metrics", "--period", "1h", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pipeline = report["pipeline"]
    assert (pipeline["runs"], pipeline["success"], pipeline["failure"]) == (20, 16, 4)
    assert pipeline["error_ratio"] == pytest.approx(0.2)
    assert set(pipeline["duration_seconds"]) == {
        "count",
        "mean",
        "p50",
        "p90",
        "p95",
        "p99",
        "min",
        "max",
    }
    stages = {row["stage"]: row for row in report["stages"]}
    assert stages["generate"]["failures"] == 4
    llm = {row["model"]: row for row in report["llm"]}
    haiku = llm["claude-haiku-4-5"]
    assert haiku["requests"] == 20
    assert haiku["errors"] == 4
    assert haiku["tokens"]["input"] == 2000
    assert haiku["priced"] is True
    assert haiku["cost_usd"] == pytest.approx(20 * (100 * 1.0 + 50 * 5.0) / 1e6)
    assert llm["local-llama"]["priced"] is False
    assert llm["local-llama"]["cost_usd"] is None
    assert report["database"][0]["operation"] == "insert"
    assert {"type": "TimeoutError", "context": "generate", "count": 4} in report["errors"]


def test_table_output_groups_and_filters(data_dir: Path) -> None:
    record_some_runs(data_dir)
    result = runner.invoke(app, ["--no-color", "monitor", "metrics"])
    assert result.exit_code == 0, result.output
    for title in (
        "Pipeline",
        "Stages",
        "LLM requests",
        "LLM tokens and cost",
        "Database",
        "Errors",
    ):
        assert title in result.output
    assert "unpriced" in result.output
    only = runner.invoke(app, ["monitor", "metrics", "--group", "llm", "--name", "llama", "--json"])
    report = json.loads(only.output)
    assert "pipeline" not in report
    assert [row["model"] for row in report["llm"]] == ["local-llama"]


def test_since_until_and_bad_values(data_dir: Path) -> None:
    record_some_runs(data_dir)
    old = runner.invoke(app, ["monitor", "metrics", "--since", "3h", "--until", "2h", "--json"])
    assert json.loads(old.output)["has_data"] is False
    for args, message in (
        (["--period", "zzz"], "--period: expected a duration"),
        (["--format", "xml"], "--format: expected one of"),
        (["--group", "nonsense"], "--group: expected some of"),
        (["--since", "1h", "--until", "2h"], "--since must be before --until"),
    ):
        result = run_assistant("monitor", "metrics", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_prometheus_format_from_the_cli_passes_promtool(data_dir: Path) -> None:
    record_some_runs(data_dir)
    result = runner.invoke(app, ["monitor", "metrics", "--format", "prometheus"])
    assert result.exit_code == 0
    assert 'assistant_pipeline_runs_total{status="failure"} 4' in result.output
    openmetrics = runner.invoke(app, ["monitor", "metrics", "--format", "openmetrics"])
    assert openmetrics.output.endswith("# EOF\n")
    promtool = require_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=result.output,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
