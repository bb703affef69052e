"""Any query string on any /api/* endpoint gets an answer or a UsageError (a 400).

Never another exception (a 500): `?period=99999999999999d` used to overflow, and
`?since=garbage` was silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant_monitoring.errors import UsageError, shown
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.runs import RunRecord, RunStore
from assistant_monitoring.server.api import ENDPOINTS
from assistant_monitoring.settings import Settings, load_settings
from tests.conftest import flush_into_store

PARAMETERS = ["period", "since", "until", "group", "name", "status", "limit", "conversation"]
VALUES = st.one_of(
    st.sampled_from(
        [
            "1h",
            "0m",
            "30s",
            "7d",
            "99999999999999d",
            "1e999s",
            "nan",
            "-5m",
            "2026-11-23T10:00",
            "2026-11-23T10:00+05:00",
            "9999-12-31T23:59:59",
            "0001-01-01",
            "failed",
            "success",
            "abandoned",
            "5",
            "0",
            "1001",
            "pipeline,llm",
            "",
            " ",
        ]
    ),
    st.text(max_size=40),
)
QUERIES = st.dictionaries(
    st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=10)), VALUES, max_size=4
)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("api") / "data"
    data.mkdir()
    inst = Instrumentation(MetricsRegistry())
    inst.metrics.pipeline_runs.labels("success").inc(3)
    inst.metrics.pipeline_runs.labels("failure").inc()
    inst.metrics.pipeline_duration.observe(0.4)
    with inst.llm_call("anthropic", "claude-haiku-4-5") as call:
        call.usage(input=10, output=5)
    flush_into_store(data, inst)
    runs = RunStore(data / "monitoring.db")
    try:
        runs.record(RunRecord(id="run_1", started_at=1.0, status="success", conversation_id="c"))
    finally:
        runs.close()
    return data


@pytest.fixture
def api_settings(populated: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(populated))
    return load_settings().settings


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_any_query_is_an_answer_or_a_usage_error(path: str, api_settings: Settings) -> None:
    endpoint = ENDPOINTS[path]

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(query=QUERIES)
    def check(query: dict[str, str]) -> None:
        try:
            document = endpoint(api_settings, query)
        except UsageError as error:
            message = str(error)
            assert "\n" not in message
            assert any(message.startswith(shown(name)) for name in query), (query, message)
        else:
            assert isinstance(document, dict)

    check()


def test_good_queries_answer(api_settings: Settings) -> None:
    report = ENDPOINTS["/api/metrics"](api_settings, {"period": "1h", "group": "pipeline"})
    assert report["pipeline"]["runs"] == 4
    assert "llm" not in report
    runs = ENDPOINTS["/api/runs"](api_settings, {"status": "success", "conversation": "c"})
    assert [run["id"] for run in runs["runs"]] == ["run_1"]
    recent = ENDPOINTS["/api/runs"](api_settings, {"since": "1h"})
    assert recent["runs"] == [], "run_1 started in 1970"
