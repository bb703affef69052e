"""Secrets in the places they hide never reach a sink (README "Secrets").

Each test puts one secret in one hiding place (URL userinfo, a key pasted as a model
name, a conversation id or a session id, prompt text with LOG_CONTENT=true, extra
arguments of a usage error) and checks the outputs that place reaches. The
end-to-end sweep of every sink at once is tests/test_secrets_e2e.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.redact import MASK, clear_registered_secrets, redact_text, register_secret
from tests.conftest import HEALTHY_THRESHOLDS, run_assistant, run_cli, run_main

KEY = "cfgKey-7Qm2Lx9Vt4Rb8Nw1"  # a key of no known shape: only registration finds it
PATTERN_KEY = "sk-ant-api03-PaStEdKeY0123456789abcdef"
PASSWORD = "urlPw-5k8Jd2Hs"
MODEL = "claude-haiku-4-5"


def files_containing(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` whose bytes hold ``secret`` (databases included)."""
    needle = secret.encode()
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file() and needle in path.read_bytes()
    ]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubLLMServer]:
    """The stub LLM, reached with KEY, and the assistant pointed at it."""
    with StubLLMServer(required_key=KEY) as server:
        monkeypatch.setenv("LLM_BASE_URL", server.url)
        monkeypatch.setenv("LLM_API_KEY", KEY)
        monkeypatch.setenv("LLM_MODEL", MODEL)
        yield server


# -- the shared rule -----------------------------------------------------------------


def test_url_userinfo_password_is_masked_by_the_shared_rule() -> None:
    from assistant_monitoring.redact import mask_url

    assert redact_text(f"GET http://user:{PASSWORD}@host:8/v1") == "GET http://user:***@host:8/v1"
    assert redact_text("https://a:b@h") == "https://a:***@h"  # short ones too
    assert redact_text("see https://example.com/a@b and x@y.z") == (
        "see https://example.com/a@b and x@y.z"
    ), "an @ in a path or an e-mail address is not userinfo"
    assert mask_url(f"http://user:{PASSWORD}@host") == "http://user:***@host"
    assert mask_url("http://host:80") == "http://host:80"


def test_configured_secrets_only_rule_keeps_key_shaped_text() -> None:
    from assistant_monitoring.redact import redact_configured

    register_secret(KEY)
    try:
        text = f"mine is {KEY}, the docs say {PATTERN_KEY}"
        assert redact_configured(text) == f"mine is {MASK}, the docs say {PATTERN_KEY}"
    finally:
        clear_registered_secrets()


# -- URL userinfo ----------------------------------------------------------------------


def test_config_show_masks_the_password_of_url_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # no folding that could split the secret
    monkeypatch.setenv("LLM_BASE_URL", f"http://user:{PASSWORD}@127.0.0.1:9")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"https://hook:{PASSWORD}@hooks.example.com/x")
    code, out, err = run_main(capsys, "config", "show")
    assert code == 0, err
    assert PASSWORD not in out + err
    assert "http://user:***@127.0.0.1:9" in out
    assert "https://hook:***@hooks.example.com/x" in out
    code, out, err = run_main(capsys, "config", "show", "--json")
    assert code == 0, err
    assert PASSWORD not in out + err
    document = json.loads(out)["settings"]
    assert document["LLM_BASE_URL"]["value"] == "http://user:***@127.0.0.1:9"


def test_config_check_warns_that_url_credentials_replace_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_BASE_URL", f"http://user:{PASSWORD}@127.0.0.1:9")
    code, out, err = run_main(capsys, "config", "check")
    assert code == 0, err
    assert PASSWORD not in out + err
    assert "LLM_BASE_URL holds a user name and password" in out


def test_an_invalid_url_setting_is_refused_with_its_password_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_BASE_URL", f"ftp://user:{PASSWORD}@files.example.com")
    code, out, err = run_main(capsys, "config", "show")
    assert code == 2
    assert PASSWORD not in out + err
    assert "LLM_BASE_URL:" in err
    assert "ftp://user:***@files.example.com" in err


def test_health_names_url_credentials_not_dns_and_never_prints_the_password(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    stub: StubLLMServer,
) -> None:
    for name, value in HEALTHY_THRESHOLDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLM_BASE_URL", stub.url.replace("http://", f"http://user:{PASSWORD}@"))
    code, out, err = run_main(capsys, "monitor", "health", "--json")
    assert code == 2, out + err
    assert PASSWORD not in out + err
    (llm,) = json.loads(out)["checks"]["llm:anthropic:responseTime"]
    message = llm["output"]
    assert "DNS" not in message
    assert "resolve" not in message
    assert "LLM_BASE_URL holds a user name and password" in message
    assert "user:***@127.0.0.1" in message
    # What the SDKs would do: the check asked with the URL's credentials, and got an answer.
    assert any(r.path == "/v1/models" for r in stub.requests)
    assert files_containing(data_dir, PASSWORD) == []


def test_ask_with_url_credentials_says_they_replaced_the_key(
    stub: StubLLMServer, data_dir: Path
) -> None:
    url = stub.url.replace("http://", f"http://user:{PASSWORD}@")
    result = run_cli("ask", "hello", LLM_BASE_URL=url)
    assert result.returncode == 2, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "LLM_BASE_URL holds a user name and password" in result.stderr
    assert files_containing(data_dir, PASSWORD) == []


# -- a key pasted where a name or an id goes ---------------------------------------------


@pytest.mark.parametrize("pasted", [PATTERN_KEY, KEY], ids=["key-shaped", "configured-key"])
def test_a_key_pasted_as_model_is_refused_before_the_call(
    pasted: str, stub: StubLLMServer, data_dir: Path
) -> None:
    result = run_cli("ask", "--model", pasted, "hello")
    assert result.returncode == 2, result.stderr
    assert pasted not in result.stdout + result.stderr
    assert "--model" in result.stderr
    assert "API key" in result.stderr
    assert not [r for r in stub.requests if r.path.endswith("/messages")], "never sent"
    assert files_containing(data_dir, pasted) == []


def test_a_key_in_llm_model_is_a_settings_error_with_the_key_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_API_KEY", KEY)
    for pasted in (KEY, PATTERN_KEY):
        monkeypatch.setenv("LLM_MODEL", pasted)
        code, out, err = run_main(capsys, "config", "check")
        assert code == 2, out + err
        assert pasted not in out + err
        assert "LLM_MODEL:" in err


def test_a_key_pasted_as_conversation_id_is_never_stored_or_echoed(
    stub: StubLLMServer, data_dir: Path
) -> None:
    result = run_cli("ask", "--conversation", PATTERN_KEY, "hello")
    assert result.returncode == 2, result.stderr
    assert PATTERN_KEY not in result.stdout + result.stderr
    assert files_containing(data_dir, PATTERN_KEY) == []


def test_a_session_id_that_is_a_secret_is_not_used(stub: StubLLMServer, data_dir: Path) -> None:
    for session in (PATTERN_KEY, KEY):
        # A process each: the session id is read once per process.
        result = run_assistant("ask", "hello", ASSISTANT_SESSION_ID=session)
        assert result.returncode == 0, result.stderr
        assert session not in result.stdout + result.stderr
        assert files_containing(data_dir, session) == []
    sessions = run_cli("monitor", "usage", "session", "--json")
    assert sessions.returncode == 0, sessions.stderr
    assert KEY not in sessions.stdout
    assert PATTERN_KEY not in sessions.stdout


# -- prompt text with LOG_CONTENT=true ----------------------------------------------------


def test_log_content_keeps_keys_out_of_runs_and_the_configured_key_out_of_everything(
    stub: StubLLMServer, data_dir: Path
) -> None:
    question = f"is {KEY} my key? and what of {PATTERN_KEY}?"
    result = run_cli("ask", "--no-stream", question, LOG_CONTENT="true")
    assert result.returncode == 0, result.stderr
    # The configured key is masked before the model sees it: it cannot echo it back.
    assert KEY not in result.stdout + result.stderr
    assert MASK in result.stdout
    # Runs apply the spans' rule: every key-shaped text and every configured secret.
    assert files_containing(data_dir, KEY) == []
    with sqlite3.connect(data_dir / "monitoring.db") as db:
        prompt, response = db.execute("SELECT prompt, response FROM pipeline_runs").fetchone()
    assert PATTERN_KEY not in prompt + response
    assert MASK in prompt
    assert MASK in response
    # The conversation is the user's own text: kept, except the configured key.
    with sqlite3.connect(data_dir / "assistant.db") as db:
        stored = [row[0] for row in db.execute("SELECT content FROM messages")]
    assert any(PATTERN_KEY in text for text in stored)
    shown = run_cli("monitor", "runs", "--json")
    assert shown.returncode == 0, shown.stderr
    assert KEY not in shown.stdout
    assert PATTERN_KEY not in shown.stdout


def test_runs_written_before_the_fix_are_shown_redacted(
    stub: StubLLMServer, data_dir: Path
) -> None:
    result = run_cli("ask", "hello", LOG_CONTENT="true")
    assert result.returncode == 0, result.stderr
    # What an older version stored: the key verbatim, in the prompt and as the model.
    with sqlite3.connect(data_dir / "monitoring.db") as db:
        db.execute(
            "UPDATE pipeline_runs SET prompt = ?, model = ?, conversation_id = ?",
            (f"my key {KEY}", PATTERN_KEY, KEY),
        )
        (run_id,) = db.execute("SELECT id FROM pipeline_runs").fetchone()
    for args in (
        ("monitor", "runs"),
        ("monitor", "runs", "--json"),
        ("monitor", "runs", "show", run_id),
    ):
        shown = run_cli(*args, COLUMNS="250")
        assert shown.returncode == 0, shown.stderr
        assert KEY not in shown.stdout + shown.stderr, args
        assert PATTERN_KEY not in shown.stdout + shown.stderr, args


# -- usage errors echo arguments -----------------------------------------------------------


@pytest.mark.parametrize("pasted", [PATTERN_KEY, KEY], ids=["key-shaped", "configured-key"])
def test_a_usage_error_does_not_echo_a_pasted_key(
    pasted: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_API_KEY", KEY)
    code, out, err = run_main(capsys, "ask", "a", "b", pasted)
    assert code == 2
    assert pasted not in out + err
    assert "unexpected extra argument" in err
    code, out, err = run_main(capsys, "monitor", "runs", "--limit", pasted)
    assert code == 2
    assert pasted not in out + err
    assert "--limit" in err
    # Our own usage errors, met before the command loaded the settings.
    for command, option in (("logs", "--since"), ("runs", "--status"), ("metrics", "--period")):
        code, out, err = run_main(capsys, "monitor", command, option, pasted)
        assert code == 2
        assert pasted not in out + err
        assert f"{option}:" in err


def test_call_model_refuses_a_key_as_model_whoever_calls_it() -> None:
    """The library's own guard, under the pipeline's: nothing sent, counted or labelled."""
    import asyncio

    from assistant.errors import SecretAsName
    from assistant.providers import GenerationRequest, RetryPolicy, call_model
    from assistant.providers.base import ChatMessage, Generation, TextCallback
    from assistant_monitoring.breaker import CircuitBreaker
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry

    class NeverCalled:
        name = "anthropic"

        async def generate(
            self, request: GenerationRequest, *, on_text: TextCallback | None = None
        ) -> Generation:
            raise AssertionError("the provider was called")

        async def close(self) -> None:
            return None

    registry = MetricsRegistry()
    request = GenerationRequest(
        model=PATTERN_KEY,
        messages=[ChatMessage("user", "hi")],
        max_tokens=10,
        temperature=0.0,
    )
    with pytest.raises(SecretAsName) as raised:
        asyncio.run(
            call_model(
                NeverCalled(),
                request,
                breaker=CircuitBreaker("llm:anthropic"),
                instrumentation=Instrumentation(registry),
                policy=RetryPolicy(max_retries=0),
                key_hint="check LLM_API_KEY",
                model_known=True,
            )
        )
    assert PATTERN_KEY not in str(raised.value)
    labels = [values for family in registry.families() for values, _ in family.items()]
    assert not [v for v in labels if PATTERN_KEY in v], "no series was labelled with it"


# -- a .env file written like headers ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        # A key assigned on one line, quoted in the error of the next.
        (f"LLM_API_KEY={KEY}\nLLM_MODEL claude {KEY}\n", KEY),
        # Header-like lines: a colon or a space where '=' goes.
        (f"MONITOR_TOKEN: {KEY}\n", KEY),
        (f"LLM_API_KEY {KEY}\n", KEY),
        (f"export ANTHROPIC_API_KEY {KEY}\n", KEY),
        (f"OTEL_EXPORTER_OTLP_HEADERS: x-honeycomb-team={KEY}\n", KEY),
        # A key with a stray quote: the text after it is the key's tail.
        (f'LLM_API_KEY="sk-"{KEY}\n', KEY),
        # A URL's password on an earlier line.
        (f"LLM_BASE_URL=http://u:{PASSWORD}@h\nLLM_MODEL x {PASSWORD}\n", PASSWORD),
    ],
    ids=["earlier-line", "colon", "space", "export-space", "headers", "after-quote", "url"],
)
def test_a_malformed_env_file_line_never_shows_a_secret(
    content: str,
    secret: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_file = tmp_path / "broken.env"
    env_file.write_text(content)
    monkeypatch.setenv("ASSISTANT_ENV_FILE", str(env_file))
    code, out, err = run_main(capsys, "config", "check")
    assert code == 2, out + err
    assert "broken.env:" in err
    assert secret not in out + err
    assert secret[:12] not in out + err, "not even shortened"
