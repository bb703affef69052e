"""Exact cost accounting: token types as each provider reports them, priced once each.

The vectors below are the contract. Each is a usage object in the provider's own
shape (parsed by the real SDK's types), the token counts we must record, and the
dollar figure worked out by hand from the list prices in the comment. They cover the
known failures of other tools: 1-hour cache writes priced at the 5-minute rate
(ccusage #899), cached input counted twice (Langfuse #10592), reasoning tokens
dropped (Logfire #1494). The end-to-end tests send the same usage through the stub
server and the real SDKs, streamed and not, and read the run the CLI recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.errors import UsageError
from assistant_monitoring.pricing import PriceTable, load_price_file
from tests.conftest import run_main


@dataclass(frozen=True)
class Vector:
    name: str
    provider: str
    model: str
    usage: dict[str, Any]  # as the API sends it
    tokens: dict[str, int]  # what we record
    cost: float | None  # hand-computed, USD
    savings: float | None = None  # cache savings, USD, where it is worth checking


# Prices (USD per million tokens): claude-sonnet-4-5 in 3, out 15, cache read 0.30,
# 5-minute write 3.75, 1-hour write 6.00; claude-opus-4-5 in 5, out 25;
# gpt-4.1 in 2, out 8, cached 0.50; gpt-5 in 1.25, out 10, cached 0.125.
VECTORS = [
    Vector(
        "anthropic plain",
        "anthropic",
        "claude-sonnet-4-5",
        {"input_tokens": 1000, "output_tokens": 500},
        {"input": 1000, "output": 500},
        # 1000 x 3 + 500 x 15 = 10,500 -> $0.0105
        0.0105,
    ),
    Vector(
        "anthropic cache read (input_tokens exclude it)",
        "anthropic",
        "claude-sonnet-4-5",
        {"input_tokens": 200, "output_tokens": 300, "cache_read_input_tokens": 10_000},
        {"input": 200, "output": 300, "cache_read": 10_000},
        # 200 x 3 + 10,000 x 0.30 + 300 x 15 = 600 + 3,000 + 4,500 = 8,100 -> $0.0081
        0.0081,
        # 10,000 x (3 - 0.30) = 27,000 -> $0.027
        0.027,
    ),
    Vector(
        "anthropic 5-minute and 1-hour writes, priced by tier",
        "anthropic",
        "claude-sonnet-4-5",
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_creation_input_tokens": 3000,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 2000,
            },
        },
        {"input": 100, "output": 50, "cache_write": 1000, "cache_write_1h": 2000},
        # 100 x 3 + 1,000 x 3.75 + 2,000 x 6 + 50 x 15 = 300 + 3,750 + 12,000 + 750
        # = 16,800 -> $0.0168 (all 3,000 at the 5-minute rate would say $0.01305)
        0.0168,
        # writes cost more than plain input: 1,000 x (3 - 3.75) + 2,000 x (3 - 6)
        # = -750 - 6,000 -> -$0.00675
        -0.00675,
    ),
    Vector(
        "anthropic writes without the tier breakdown are 5-minute writes",
        "anthropic",
        "claude-sonnet-4-5",
        {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 4000},
        {"input": 10, "output": 20, "cache_write": 4000},
        # 10 x 3 + 4,000 x 3.75 + 20 x 15 = 30 + 15,000 + 300 = 15,330 -> $0.01533
        0.01533,
    ),
    Vector(
        "anthropic thinking is part of output_tokens",
        "anthropic",
        "claude-opus-4-5",
        {
            "input_tokens": 50,
            "output_tokens": 2000,
            "output_tokens_details": {"thinking_tokens": 1500},
        },
        {"input": 50, "output": 2000, "reasoning": 1500},
        # 50 x 5 + 2,000 x 25 = 250 + 50,000 = 50,250 -> $0.05025 (thinking not added)
        0.05025,
    ),
    Vector(
        "openai plain",
        "openai",
        "gpt-4.1",
        {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        {"input": 1000, "output": 100},
        # 1000 x 2 + 100 x 8 = 2,800 -> $0.0028
        0.0028,
    ),
    Vector(
        "openai prompt_tokens include cached_tokens",
        "openai",
        "gpt-4.1",
        {
            "prompt_tokens": 5000,
            "completion_tokens": 200,
            "total_tokens": 5200,
            "prompt_tokens_details": {"cached_tokens": 4096},
        },
        {"input": 904, "output": 200, "cache_read": 4096},
        # 904 x 2 + 4,096 x 0.50 + 200 x 8 = 1,808 + 2,048 + 1,600 = 5,456 -> $0.005456
        # (counting the cached tokens as input too would say $0.013648)
        0.005456,
        # 4,096 x (2 - 0.50) = 6,144 -> $0.006144
        0.006144,
    ),
    Vector(
        "openai reasoning is part of completion_tokens",
        "openai",
        "gpt-5",
        {
            "prompt_tokens": 2000,
            "completion_tokens": 3000,
            "total_tokens": 5000,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 2500},
        },
        {"input": 976, "output": 3000, "cache_read": 1024, "reasoning": 2500},
        # 976 x 1.25 + 1,024 x 0.125 + 3,000 x 10 = 1,220 + 128 + 30,000 = 31,348
        # -> $0.031348
        0.031348,
    ),
    Vector(
        "an unpriced model stays unpriced, never $0",
        "openai",
        "my-local-model",
        {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        {"input": 100, "output": 10},
        None,
    ),
]
ALL_TYPES = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")


def _parse(vector: Vector) -> dict[str, int]:
    if vector.provider == "anthropic":
        from anthropic.types import Usage as AnthropicUsage

        from assistant.providers.anthropic_provider import usage_from_sdk

        return usage_from_sdk(AnthropicUsage.model_validate(vector.usage)).as_tokens()
    from openai.types import CompletionUsage

    from assistant.providers.openai_provider import usage_from_sdk as openai_usage

    return openai_usage(CompletionUsage.model_validate(vector.usage)).as_tokens()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_tokens_and_cost(vector: Vector) -> None:
    tokens = _parse(vector)
    assert tokens == {kind: vector.tokens.get(kind, 0) for kind in ALL_TYPES}
    price = PriceTable().price(vector.model)
    if vector.cost is None:
        assert price is None
        return
    assert price is not None
    assert price.cost(**tokens) == pytest.approx(vector.cost, abs=1e-12)
    if vector.savings is not None:
        cached = {k: tokens[k] for k in ("cache_read", "cache_write", "cache_write_1h")}
        assert price.cache_savings(**cached) == pytest.approx(vector.savings, abs=1e-12)


def test_price_version_follows_every_price(tmp_path: Path) -> None:
    builtin = PriceTable()
    assert builtin.version == PriceTable().version, "a digest, the same in every process"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4.1": {"input": 2.0, "output": 8.0, "cache_read": 0.4}}))
    changed = PriceTable.with_overrides(path)
    assert changed.version != builtin.version
    # A price file entry without a 1-hour tier gets Anthropic's rule (2x input).
    path.write_text(json.dumps({"m": {"input": 1.5, "output": 3}}))
    assert load_price_file(path)["m"].cache_write_1h == 3.0
    path.write_text(json.dumps({"m": {"input": -1, "output": 3}}))
    with pytest.raises(UsageError, match="'m' input: must be a number from 0 to 10000"):
        load_price_file(path)


# -- end to end: the stub server, the real SDKs, the installed CLI -------------------


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer(any_model=True) as server:
        yield server


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v.name.startswith(("anthropic 5", "anthropic thinking", "openai"))],
    ids=lambda v: v.name,
)
# The anthropic SDK warns of deprecated models; a real process ignores that warning
# (it is not raised in __main__), the suite's filterwarnings=error would not.
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_vector_end_to_end(
    vector: Vector,
    stream: bool,
    stub: StubLLMServer,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI in process (the real SDK over HTTP to the stub, the real store): what
    a process adds is proven by tests/test_assistant_e2e.py."""
    stub.plan.usage = {vector.provider: vector.usage}
    monkeypatch.setenv("LLM_PROVIDER", vector.provider)
    monkeypatch.setenv("LLM_MODEL", vector.model)
    monkeypatch.setenv("LLM_BASE_URL", stub.url + ("/v1" if vector.provider == "openai" else ""))
    monkeypatch.setenv("LLM_API_KEY", "sk-test-key-0000000000000000")
    # --json never streams; the streamed case reads the recorded run only.
    args = ["ask", *([] if stream else ["--json"]), "How much?"]
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    expected = {kind: vector.tokens.get(kind, 0) for kind in ALL_TYPES}
    if not stream:
        assert json.loads(out)["tokens"] == expected
    code, shown, err = run_main(capsys, "monitor", "runs", "--json")
    assert code == 0, err
    (run,) = json.loads(shown)["runs"]
    recorded = {
        "input": run["input_tokens"],
        "output": run["output_tokens"],
        "cache_read": run["cache_read_tokens"],
        "cache_write": run["cache_write_tokens"],
        "cache_write_1h": run["cache_write_1h_tokens"],
        "reasoning": run["reasoning_tokens"],
    }
    assert recorded == expected
    if vector.cost is None:
        assert run["cost_usd"] is None
        assert run["price_version"] is None
    else:
        assert run["cost_usd"] == pytest.approx(vector.cost, abs=1e-12)
        assert run["price_version"] == PriceTable().version
