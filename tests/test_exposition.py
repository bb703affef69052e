"""Prometheus and OpenMetrics text from the store, checked by the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

from assistant_monitoring.metrics.exposition import render_exposition
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.runtime import MetricsRuntime
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import require_tool


def filled_store(path: Path) -> MetricsStore:
    inst = Instrumentation(MetricsRegistry())
    for status, seconds in (("success", 0.2), ("success", 1.4), ("failure", 0.03)):
        inst.metrics.pipeline_runs.labels(status).inc()
        inst.metrics.pipeline_duration.observe(seconds)
    with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
        call.usage(input=120, output=40)
    # Our families' labels only take safe values; a family of a library user may not.
    tricky = inst.registry.counter(
        "app_tricky_total", 'HELP with "quotes", \\ and\na newline', ["v"]
    )
    tricky.labels('tricky "quoted" \\ back\nslash').inc()
    inst.metrics.breaker_state.labels("llm:anthropic", "closed").set(1)
    inst.sample_process()
    store = MetricsStore(path)
    assert MetricsRuntime(inst, store).flush()
    return store


def test_text_format(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "monitoring.db")
    text = render_exposition(store.connect())
    assert "# TYPE assistant_pipeline_runs_total counter" in text
    assert 'assistant_pipeline_runs_total{status="success"} 2' in text
    assert "# TYPE assistant_pipeline_duration_seconds histogram" in text
    assert 'assistant_pipeline_duration_seconds_bucket{le="0.05"} 1' in text
    assert 'assistant_pipeline_duration_seconds_bucket{le="+Inf"} 3' in text
    assert "assistant_pipeline_duration_seconds_count 3" in text
    assert 'le="81.92"' in text  # GenAI duration boundaries on LLM histograms
    assert 'v="tricky \\"quoted\\" \\\\ back\\nslash"' in text
    assert '# HELP app_tricky_total HELP with "quotes", \\\\ and\\na newline' in text
    assert "# EOF" not in text
    store.close()


def test_openmetrics_format(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "monitoring.db")
    text = render_exposition(store.connect(), openmetrics=True)
    assert "# TYPE assistant_pipeline_runs counter" in text
    assert 'assistant_pipeline_runs_total{status="success"} 2' in text
    assert "# UNIT process_resident_memory_bytes bytes" in text
    assert text.endswith("# EOF\n")
    store.close()


def test_promtool_accepts_the_exposition(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    store = filled_store(tmp_path / "monitoring.db")
    text = render_exposition(store.connect())
    store.close()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", f"promtool lint: {result.stdout}"


def test_openmetrics_help_escapes_quotes_and_parses(tmp_path: Path) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    store = filled_store(tmp_path / "monitoring.db")
    text = render_exposition(store.connect(), openmetrics=True)
    store.close()
    assert '# HELP app_tricky HELP with \\"quotes\\", \\\\ and\\na newline' in text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["app_tricky"].documentation == 'HELP with "quotes", \\ and\na newline'
    (sample,) = families["app_tricky"].samples
    assert sample.labels == {"v": 'tricky "quoted" \\ back\nslash'}
    assert families["assistant_pipeline_runs"].type == "counter"
