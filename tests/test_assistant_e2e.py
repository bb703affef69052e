"""The assistant end to end, from the installed CLI, against the stub server.

For both providers: success, streaming, retries then success, a rejected key, the
breaker opening after repeated 5xx and failing fast in the next process, and a
classifier that times out. Metrics, logs and runs are checked after each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import metrics_window
from tests.conftest import run_assistant as assistant

MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4.1"}


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@pytest.fixture(params=["anthropic", "openai"])
def provider(
    request: pytest.FixtureRequest, stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch
) -> str:
    name: str = request.param
    monkeypatch.setenv("LLM_PROVIDER", name)
    monkeypatch.setenv("LLM_MODEL", MODELS[name])
    monkeypatch.setenv("LLM_BASE_URL", stub.url + ("/v1" if name == "openai" else ""))
    monkeypatch.setenv("LLM_API_KEY", "sk-test-key-0000000000000000")
    return name


def runs(*args: str) -> list[dict[str, Any]]:
    result = assistant("monitor", "runs", "--json", *args)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["runs"])


def log_lines(data_dir: Path, name: str = "assistant.jsonl") -> list[dict[str, Any]]:
    path = data_dir / "logs" / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ask_streams_persists_and_records_everything(provider: str, data_dir: Path) -> None:
    result = assistant("ask", "What is a circuit breaker?")
    assert result.returncode == 0, result.stderr
    assert "stub model answering: What is a circuit breaker?" in result.stdout
    assert "conversation c_" in result.stderr
    (run,) = runs()
    assert run["status"] == "success"
    assert run["provider"] == provider
    assert [s["name"] for s in run["stages"]] == ["context", "classify", "generate", "persist"]
    assert run["classifiers"]["intent"]["label"] == "question"
    assert run["classifiers"]["safety"]["label"] == "safe"
    assert run["output_tokens"] > 0
    assert run["ttft_ms"] is not None
    assert run["prompt"] is None, "content is not stored unless LOG_CONTENT=true"
    conversation = run["conversation_id"]
    # The conversation continues, with its history sent as context.
    again = assistant("ask", "--conversation", conversation, "--no-stream", "And a bulkhead?")
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(data_dir / "assistant.db") as db:
        roles = [
            row[0]
            for row in db.execute(
                "SELECT role FROM messages WHERE conversation_id = ? ORDER BY created_at, rowid",
                (conversation,),
            )
        ]
    assert roles == ["user", "assistant", "user", "assistant"]
    metrics = metrics_window(data_dir)
    assert metrics.total("assistant_pipeline_runs_total", status="success") == 2
    assert metrics.total("assistant_stage_runs_total", stage="generate", status="success") == 2
    assert metrics.total("assistant_llm_requests_total", provider=provider, status="success") == 2
    assert metrics.total("assistant_llm_tokens_total", provider=provider, type="output") > 0
    assert metrics.total("assistant_db_queries_total", operation="insert") >= 2
    ttft = metrics.combined("assistant_llm_time_to_first_token_seconds")
    assert ttft is not None
    assert ttft.count == 1  # the --no-stream answer has no first token
    summaries = [line for line in log_lines(data_dir) if line.get("event") == "pipeline_summary"]
    assert len(summaries) == 2
    assert summaries[0]["conversation_id"] == conversation
    assert summaries[0]["status"] == "success"


def test_retries_then_success(provider: str, stub: StubLLMServer, data_dir: Path) -> None:
    stub.push_faults("500", "429:0")
    result = assistant("ask", "--json", "hello")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["retries"] == 2
    (run,) = runs()
    assert run["retries"] == 2
    assert metrics_window(data_dir).total("assistant_llm_retries_total", provider=provider) == 2
    retries = [line for line in log_lines(data_dir) if line.get("event") == "llm_retry"]
    assert len(retries) == 2


def test_rejected_key_fails_at_once_with_a_clear_line(
    provider: str, stub: StubLLMServer, data_dir: Path
) -> None:
    stub.plan.required_key = "the-right-key-000"
    result = assistant("ask", "hello", ASSISTANT_ENV="test")
    assert result.returncode == 2
    name = {"anthropic": "Anthropic", "openai": "OpenAI"}[provider]
    # The key came from the environment: that is where to look, not a file.
    assert f"{name} rejected the API key (401): check LLM_API_KEY in the environment" in (
        result.stderr
    )
    assert ".env." not in result.stderr
    assert "Traceback" not in result.stderr
    assert len([r for r in stub.requests if r.status == 401]) == 1, "a 401 is not retried"
    (run,) = runs("--status", "failed")
    assert run["failed_stage"] == "generate"
    assert run["error_type"] == "ProviderAuthError"
    assert "the-right-key" not in json.dumps(run)
    with sqlite3.connect(data_dir / "assistant.db") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,), (
            "nothing half-written"
        )
        assert db.execute("SELECT count(*) FROM conversations").fetchone() == (0,)
    errors = log_lines(data_dir, "error.jsonl")
    assert any(line.get("error_type") == "ProviderAuthError" for line in errors)


def test_missing_key_is_recorded_as_a_failed_run(
    provider: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLM_API_KEY")
    result = assistant("ask", "hello")
    assert result.returncode == 2
    assert "no API key for" in result.stderr
    (run,) = runs()
    assert run["status"] == "failure"
    assert run["error_type"] == "MissingApiKey"


def test_breaker_opens_after_repeated_5xx_and_the_next_process_fails_fast(
    provider: str, stub: StubLLMServer, data_dir: Path
) -> None:
    env = {"BREAKER_FAILURE_THRESHOLD": "2", "LLM_MAX_RETRIES": "1"}
    stub.plan.error_rate = 1.0
    for _ in range(2):
        failed = assistant("ask", "hello", **env)
        assert failed.returncode == 1
        assert "unavailable (500) after 2 attempts" in failed.stderr
    served = len(stub.requests)
    # -X importtime's lines on stderr: which modules the refusal imported.
    fast = assistant("ask", "hello", PYTHONPROFILEIMPORTTIME="1", **env)
    assert fast.returncode == 1
    assert f"llm:{provider} is unavailable: circuit open" in fast.stderr
    assert len(stub.requests) == served, "an open breaker sends nothing"
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in fast.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "assistant.pipeline" in imported, "the import lines were read"
    assert not imported & {"anthropic", "openai", "httpx"}, "a refusal imports no SDK"
    breakers = json.loads(assistant("monitor", "breakers", "--json").stdout)["breakers"]
    assert {b["service"]: b["state"] for b in breakers}[f"llm:{provider}"] == "open"
    assert [r["error_type"] for r in runs()] == [
        "CircuitOpenError",
        "ProviderUnavailable",
        "ProviderUnavailable",
    ]
    metrics = metrics_window(data_dir)
    assert metrics.total("assistant_llm_requests_total", status="circuit_open") == 1
    health = assistant("monitor", "health", "--check", "breakers")
    assert health.returncode == 1


def test_classifier_timeout_degrades_the_run_but_does_not_fail_it(
    provider: str, data_dir: Path
) -> None:
    result = assistant("ask", "hello there", CLASSIFIER_TIMEOUT_MS="0.001")
    assert result.returncode == 0, result.stderr
    (run,) = runs()
    assert run["status"] == "success"
    assert {c["status"] for c in run["classifiers"].values()} == {"timeout"}
    metrics = metrics_window(data_dir)
    assert (
        metrics.total("assistant_errors_total", type="TimeoutError", context="classifier:intent")
        == 1
    )


def test_chat_session_with_stats_and_a_failure_in_the_middle(
    provider: str, stub: StubLLMServer, data_dir: Path
) -> None:
    stub.push_faults("500")  # the first message fails (no retries); the session goes on
    script = "first message\nsecond message\n/stats\nthird message\n/exit\n"
    result = assistant("chat", stdin=script, LLM_MAX_RETRIES="0")
    assert result.returncode == 1, "a message failed: exit 1"
    assert result.stdout.count("stub model answering") == 2
    assert "is unavailable (500)" in result.stderr
    assert "2 answered, 1 failed" in result.stderr
    statuses = [r["status"] for r in runs()]
    assert statuses == ["success", "success", "failure"]
    conversations = {r["conversation_id"] for r in runs("--status", "success")}
    assert len(conversations) == 1, "one chat session is one conversation"


def test_piped_chat_stops_at_an_error_every_line_would_meet(
    provider: str, stub: StubLLMServer, data_dir: Path
) -> None:
    # No key (or a rejected one) fails every line alike: stop at the first, as ask does.
    result = assistant("chat", stdin="one\ntwo\nthree\n", LLM_API_KEY="")
    assert result.returncode == 2, result.stderr
    assert "0 answered, 1 failed" in result.stderr
    assert result.stderr.count("no API key") == 1
    stub.push_faults("401")
    result = assistant("chat", stdin="one\ntwo\n", LLM_MAX_RETRIES="0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("rejected the API key (401)") == 1
    assert result.stdout.count("stub model answering") == 0, "the second line was not sent"
    assert [r["status"] for r in runs()] == ["failure", "failure"]


def test_log_content_stores_prompt_and_response(provider: str) -> None:
    assert assistant("ask", "remember this", LOG_CONTENT="true").returncode == 0
    (run,) = runs()
    assert run["prompt"] == "remember this"
    assert "remember this" in run["response"]
    shown = assistant("--no-color", "monitor", "runs", "show", run["id"][:10])
    assert shown.returncode == 0, shown.stderr
    assert "stage timeline" in shown.stdout
    assert "generate" in shown.stdout


def test_db_migrate_and_status(data_dir: Path) -> None:
    status = json.loads(assistant("db", "status", "--json").stdout)
    assert status["exists"] is False
    first = assistant("db", "migrate")
    assert "applied m001_initial, m002_cache_tokens, m003_conversations_by_time" in first.stdout
    assert "is up to date" in assistant("db", "migrate").stdout
    status = json.loads(assistant("db", "status", "--json").stdout)
    assert status["applied"] == ["m001_initial", "m002_cache_tokens", "m003_conversations_by_time"]
    assert status["pending"] == []
