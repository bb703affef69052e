"""The stub LLM server: the real SDKs work against it, and it injects faults."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

import anthropic
import openai
import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.endpoints import sdk_base_url
from tests.conftest import installed_assistant, subprocess_env

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


_CLIENTS: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture
def stub():  # type: ignore[no-untyped-def]
    with StubLLMServer(seed=1) as server:
        yield server
        for client in _CLIENTS:
            client.close()  # unclosed connection pools are ResourceWarnings (errors here)
        _CLIENTS.clear()


def anthropic_client(url: str, key: str = "sk-ant-test-key-000000") -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        api_key=key, base_url=sdk_base_url("anthropic", url), max_retries=0
    )
    _CLIENTS.append(client)
    return client


def openai_client(url: str) -> openai.OpenAI:
    client = openai.OpenAI(
        api_key="sk-test-key-000000", base_url=sdk_base_url("openai", url), max_retries=0
    )
    _CLIENTS.append(client)
    return client


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_anthropic_sdk_plain_stream_and_models(stub: StubLLMServer, suffix: str) -> None:
    client = anthropic_client(stub.url + suffix)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT)
    assert "capital of France" in message.content[0].text  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == message.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == message.usage.output_tokens
    assert "claude-haiku-4-5" in [model.id for model in client.models.list()]


def test_anthropic_cache_tokens(stub: StubLLMServer) -> None:
    client = anthropic_client(stub.url)
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        system=[{"type": "text", "text": "x " * 400, "cache_control": {"type": "ephemeral"}}],
        messages=PROMPT,
    )
    assert message.usage.cache_read_input_tokens is not None
    assert message.usage.cache_read_input_tokens > 0


@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_openai_sdk_plain_stream_and_models(stub: StubLLMServer, suffix: str) -> None:
    client = openai_client(stub.url + suffix)
    completion = client.chat.completions.create(model="gpt-5", messages=PROMPT)  # type: ignore[arg-type]
    assert "capital of France" in (completion.choices[0].message.content or "")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model="gpt-5",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == completion.choices[0].message.content
    assert usage is not None
    assert usage.completion_tokens == completion.usage.completion_tokens
    assert "gpt-5" in [model.id for model in client.models.list()]


def test_faults_map_to_the_sdk_errors(stub: StubLLMServer) -> None:
    client = anthropic_client(stub.url)
    stub.push_faults("429:7", "500", "529", "401", "drop", "malformed")
    expected = [
        anthropic.RateLimitError,
        anthropic.InternalServerError,
        anthropic.APIStatusError,
        anthropic.AuthenticationError,
        anthropic.APIConnectionError,
        ValueError,  # the SDK's JSON decoding of a broken body
    ]
    for error_type in expected:
        with pytest.raises(error_type) as caught:
            client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT)
        if error_type is anthropic.RateLimitError:
            assert caught.value.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
    assert client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT).content


def test_openai_faults(stub: StubLLMServer) -> None:
    client = openai_client(stub.url)
    stub.push_faults("429", "503")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-5", messages=PROMPT)  # type: ignore[arg-type]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-5", messages=PROMPT)  # type: ignore[arg-type]


def test_required_key_latency_and_error_rate(stub: StubLLMServer) -> None:
    stub.plan.required_key = "right-key-0000"
    stub.plan.latency = 0.05
    stub.plan.error_rate = 1.0
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(stub.url, "wrong-key-0000").messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=PROMPT
        )
    good = anthropic_client(stub.url, "right-key-0000")
    started = time.perf_counter()
    with pytest.raises(anthropic.InternalServerError):
        good.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT)
    assert time.perf_counter() - started >= 0.05


def test_faults_can_be_queued_over_http(stub: StubLLMServer) -> None:
    request = urllib.request.Request(
        stub.url + "/_stub/faults",
        data=json.dumps({"queue": ["500"]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["queued"] == 1
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client(stub.url).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=PROMPT
        )


def test_dev_stub_llm_command_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [installed_assistant(), "dev", "stub-llm", "--port", "0"],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "Stub LLM server on http://127.0.0.1:" in line
        url = line.split(" on ")[1].split()[0]
        with anthropic.Anthropic(api_key="k-000000", base_url=url, max_retries=0) as client:
            assert client.messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=PROMPT
            ).content
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
    assert code == 143


def test_unknown_models_get_a_404_like_the_real_apis(stub: StubLLMServer) -> None:
    with pytest.raises(anthropic.NotFoundError, match="not found"):
        anthropic_client(stub.url).messages.create(
            model="claude-nonsense-9", max_tokens=5, messages=PROMPT
        )
    with pytest.raises(openai.NotFoundError, match="not found"):
        openai_client(stub.url).chat.completions.create(model="gpt-nonsense", messages=PROMPT)  # type: ignore[arg-type]
    dated = anthropic_client(stub.url).messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=5, messages=PROMPT
    )
    assert dated.content
    with StubLLMServer(any_model=True) as lenient:
        assert (
            anthropic_client(lenient.url)
            .messages.create(model="my-local-model", max_tokens=5, messages=PROMPT)
            .content
        )
