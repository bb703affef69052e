"""The instrumentation API: sync and async timers, LLM calls, costs, never raising."""

from __future__ import annotations

import asyncio
import time

import pytest

from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.pricing import ModelPrice, PriceTable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def deltas(inst: Instrumentation) -> dict[tuple[str, tuple[tuple[str, str], ...]], object]:
    return {(d.family, d.labels): d for d in inst.registry.take_deltas()}


def test_stage_as_context_manager_and_decorator_with_status() -> None:
    clock = FakeClock()
    inst = Instrumentation(MetricsRegistry(), clock=clock)
    with inst.stage("context"):
        clock.advance(0.25)

    @inst.stage("generate")
    def generate() -> str:
        clock.advance(1.5)
        return "answer"

    assert generate() == "answer"
    assert generate.__name__ == "generate"

    def persist() -> None:
        with inst.stage("persist"):
            clock.advance(0.1)
            raise RuntimeError("disk")

    with pytest.raises(RuntimeError, match="disk"):
        persist()
    got = deltas(inst)
    assert (
        got[("assistant_stage_runs_total", (("stage", "context"), ("status", "success")))].value
        == 1
    )  # type: ignore[attr-defined]
    assert (
        got[("assistant_stage_runs_total", (("stage", "persist"), ("status", "failure")))].value
        == 1
    )  # type: ignore[attr-defined]
    context = got[("assistant_stage_duration_seconds", (("stage", "context"),))]
    assert context.sum == pytest.approx(0.25)  # type: ignore[attr-defined]
    generate_hist = got[("assistant_stage_duration_seconds", (("stage", "generate"),))]
    assert generate_hist.sum == pytest.approx(1.5)  # type: ignore[attr-defined]


def test_async_decorator_measures_the_awaited_time() -> None:
    # prometheus_client's .time() on an async def measures ~0 s; ours must not.
    inst = Instrumentation(MetricsRegistry())

    @inst.stage("generate")
    async def generate() -> str:
        await asyncio.sleep(0.05)
        return "ok"

    async def main() -> None:
        async with inst.stage("context"):
            await asyncio.sleep(0.02)
        assert await generate() == "ok"
        await asyncio.gather(generate(), generate())  # concurrent calls, one timer each

    asyncio.run(main())
    got = deltas(inst)
    generate_hist = got[("assistant_stage_duration_seconds", (("stage", "generate"),))]
    assert generate_hist.count == 3  # type: ignore[attr-defined]
    assert generate_hist.min >= 0.05  # type: ignore[attr-defined]
    context = got[("assistant_stage_duration_seconds", (("stage", "context"),))]
    assert context.min >= 0.02  # type: ignore[attr-defined]


def test_pipeline_run_counts_failures_from_exceptions() -> None:
    inst = Instrumentation(MetricsRegistry())
    with inst.pipeline_run():
        pass
    with pytest.raises(ValueError, match="bad"), inst.pipeline_run():
        raise ValueError("bad")
    got = deltas(inst)
    assert got[("assistant_pipeline_runs_total", (("status", "success"),))].value == 1  # type: ignore[attr-defined]
    assert got[("assistant_pipeline_runs_total", (("status", "failure"),))].value == 1  # type: ignore[attr-defined]
    assert got[("assistant_pipeline_duration_seconds", ())].count == 2  # type: ignore[attr-defined]


def test_llm_call_records_tokens_cost_ttft_retries() -> None:
    clock = FakeClock()
    prices = PriceTable({"claude-sonnet-4-5": ModelPrice(3.0, 15.0, 0.3, 3.75)})
    inst = Instrumentation(MetricsRegistry(), clock=clock, prices=prices)
    with inst.llm_call("anthropic", "claude-sonnet-4-5-20250929") as call:
        call.retry()
        clock.advance(0.4)
        call.first_token()
        clock.advance(0.6)
        call.first_token()  # only the first counts
        call.usage(input=1000, output=500, cache_read=2000, cache_write=100)
    assert call.cost == pytest.approx((1000 * 3 + 500 * 15 + 2000 * 0.3 + 100 * 3.75) / 1e6)
    with inst.llm_call("openai", "unknown-local-model") as unpriced:
        unpriced.usage(input=10, output=5)
    assert unpriced.cost is None
    with pytest.raises(ConnectionError), inst.llm_call("openai", "gpt-5"):
        raise ConnectionError("down")
    got = deltas(inst)
    model = (("provider", "anthropic"), ("model", "claude-sonnet-4-5-20250929"))
    assert got[("assistant_llm_requests_total", (*model, ("status", "success")))].value == 1  # type: ignore[attr-defined]
    assert got[("assistant_llm_request_duration_seconds", model)].sum == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert got[("assistant_llm_time_to_first_token_seconds", model)].sum == pytest.approx(0.4)  # type: ignore[attr-defined]
    assert got[("assistant_llm_tokens_total", (*model, ("type", "cache_read")))].value == 2000  # type: ignore[attr-defined]
    assert got[("assistant_llm_retries_total", (("provider", "anthropic"),))].value == 1  # type: ignore[attr-defined]
    assert ("assistant_llm_cost_usd_total", model) in got
    unpriced_model = (("provider", "openai"), ("model", "unknown-local-model"))
    assert ("assistant_llm_cost_usd_total", unpriced_model) not in got, "never $0"
    failed = (("provider", "openai"), ("model", "gpt-5"), ("status", "error"))
    assert got[("assistant_llm_requests_total", failed)].value == 1  # type: ignore[attr-defined]
    assert got[("assistant_errors_total", (("type", "ConnectionError"), ("context", "llm:openai")))]


def test_db_query_operation_is_a_closed_set() -> None:
    inst = Instrumentation(MetricsRegistry())
    with inst.db_query("SELECT"):
        pass
    with inst.db_query("vacuum"):
        pass
    got = deltas(inst)
    assert ("assistant_db_queries_total", (("operation", "select"),)) in got
    assert ("assistant_db_queries_total", (("operation", "other"),)) in got


def test_classifier_and_errors_and_process() -> None:
    inst = Instrumentation(MetricsRegistry())
    with inst.classifier("intent"):
        inst.classification("intent", 1.7)  # clamped to 1
    inst.error(TimeoutError(), context="generate")
    inst.error("ProviderUnavailable", context="generate")
    inst.health("database", "degraded")
    time.process_time()
    inst.sample_process()
    got = deltas(inst)
    assert got[("assistant_classifier_confidence", (("classifier", "intent"),))].max == 1.0  # type: ignore[attr-defined]
    assert (
        got[("assistant_errors_total", (("type", "TimeoutError"), ("context", "generate")))].value
        == 1
    )  # type: ignore[attr-defined]
    assert got[("assistant_health_status", (("check", "database"),))].value == 0.5  # type: ignore[attr-defined]
    assert got[("process_resident_memory_bytes", ())].value > 10_000_000  # type: ignore[attr-defined]
