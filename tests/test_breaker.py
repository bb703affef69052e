"""Circuit breakers: thresholds, classification, recovery, concurrency, persistence."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import anthropic
import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.breaker import (
    BreakerConfig,
    BreakerRegistry,
    BreakerStateStore,
    CircuitBreaker,
    CircuitOpenError,
)
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def fail() -> None:
    raise ConnectionError("connection refused")


def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = Clock()
    breaker = CircuitBreaker("llm:anthropic", BreakerConfig(failure_threshold=3), clock=clock)
    trip(breaker, 2)
    assert breaker.call(lambda: "ok") == "ok"  # a success resets the count
    trip(breaker, 3)
    assert breaker.state.state == "open"
    calls = []
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(lambda: calls.append(1))
    assert calls == [], "an open breaker does not call the service"
    message = str(refused.value)
    assert message.startswith("llm:anthropic is unavailable: circuit open (3 consecutive failures")
    assert "will retry after" in message
    assert "(in 60s)" in message


def test_reset_timeout_grows_on_repeated_trips_and_recovers() -> None:
    clock = Clock()
    config = BreakerConfig(failure_threshold=1, reset_timeout=10, backoff=2, max_reset_timeout=25)
    breaker = CircuitBreaker("database", config, clock=clock)
    trip(breaker, 1)
    assert breaker.state.retry_at == clock.now + 10
    clock.now += 10
    assert breaker.state.state == "half_open"
    trip(breaker, 1)  # the trial fails: open again, longer
    assert breaker.state.retry_at == clock.now + 20
    clock.now += 20
    trip(breaker, 1)
    assert breaker.state.retry_at == clock.now + 25  # capped
    clock.now += 25
    assert breaker.call(lambda: 1) == 1
    assert breaker.state.state == "closed"
    trip(breaker, 1)
    assert breaker.state.retry_at == clock.now + 10, "a full recovery resets the backoff"


def test_client_errors_do_not_count_and_429_opens_for_retry_after() -> None:
    clock = Clock()
    breaker = CircuitBreaker("llm:anthropic", BreakerConfig(failure_threshold=2), clock=clock)
    with (
        StubLLMServer() as stub,
        anthropic.Anthropic(api_key="k-0000000000", base_url=stub.url, max_retries=0) as client,
    ):

        def ask() -> object:
            return client.messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )

        stub.push_faults("401", "401", "401", "400")
        for error in (anthropic.AuthenticationError,) * 3 + (anthropic.BadRequestError,):
            with pytest.raises(error):
                breaker.call(ask)
        assert breaker.state.state == "closed"
        stub.push_faults("429:30")
        with pytest.raises(anthropic.RateLimitError):
            breaker.call(ask)
        state = breaker.state
        assert state.state == "open"
        assert state.retry_at == clock.now + 30
        assert "rate limited (429)" in (state.reason or "")
        clock.now += 30
        stub.push_faults("500")
        with pytest.raises(anthropic.InternalServerError):
            breaker.call(ask)
        assert breaker.state.state == "open"


def test_half_open_lets_exactly_the_permitted_trials_through() -> None:
    clock = Clock()
    config = BreakerConfig(failure_threshold=1, reset_timeout=5, half_open_max_calls=3)
    breaker = CircuitBreaker("llm:openai", config, clock=clock)
    trip(breaker, 1)
    clock.now += 5
    started = 0

    async def main() -> list[object]:
        gate = asyncio.Event()

        async def work() -> str:
            nonlocal started
            started += 1
            await gate.wait()
            return "ok"

        async def caller() -> object:
            try:
                return await breaker.acall(work)
            except CircuitOpenError:
                return "refused"

        tasks = [asyncio.create_task(caller()) for _ in range(50)]
        while started < 3:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        gate.set()
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    assert started == 3
    assert results.count("ok") == 3
    assert results.count("refused") == 47
    assert breaker.state.state == "closed"


def test_decorators_and_context_managers_sync_and_async() -> None:
    breaker = CircuitBreaker("svc", BreakerConfig(failure_threshold=2), clock=Clock())

    @breaker
    def sync_fail() -> None:
        raise TimeoutError("slow")

    @breaker
    async def async_fail() -> None:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        sync_fail()
    with pytest.raises(TimeoutError):
        asyncio.run(async_fail())
    assert breaker.state.state == "open"
    with pytest.raises(CircuitOpenError), breaker:
        pass
    breaker.reset()

    async def use_async_with() -> None:
        async with breaker:
            raise TimeoutError("slow")

    with breaker:
        pass
    with pytest.raises(TimeoutError):
        asyncio.run(use_async_with())
    assert breaker.state.failures == 1


def test_lock_guards_state_not_the_call() -> None:
    breaker = CircuitBreaker("svc")
    inside = threading.Event()
    release = threading.Event()

    def slow_call() -> None:
        inside.set()
        release.wait(5)

    worker = threading.Thread(target=breaker.call, args=(slow_call,))
    worker.start()
    assert inside.wait(5)
    assert breaker.call(lambda: "not blocked") == "not blocked"
    release.set()
    worker.join()


def test_failure_rate_rule() -> None:
    config = BreakerConfig(
        failure_threshold=100, failure_rate_threshold=0.5, window_seconds=60, minimum_calls=10
    )
    breaker = CircuitBreaker("svc", config, clock=Clock())
    for number in range(10):  # alternate, ending on a failure: 5 of 10 failed
        if number % 2 == 0:
            breaker.call(lambda: None)
        else:
            with pytest.raises(ConnectionError):
                breaker.call(fail)
    assert breaker.state.state == "open"
    assert "failure rate over 50%" in (breaker.state.reason or "")


def test_state_is_shared_across_processes_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    clock = Clock()
    config = BreakerConfig(failure_threshold=3)
    # Three short "processes", one failure each: consecutive failures add up.
    for _ in range(3):
        store = BreakerStateStore(path)
        trip(CircuitBreaker("llm:anthropic", config, store=store, clock=clock), 1)
        store.close()
    store = BreakerStateStore(path)
    fresh = CircuitBreaker("llm:anthropic", config, store=store, clock=clock)
    with pytest.raises(CircuitOpenError):
        fresh.call(lambda: None)
    fresh.reset()
    store.close()
    store = BreakerStateStore(path)
    assert store.load("llm:anthropic").state == "closed"  # type: ignore[union-attr]
    store.close()


def test_concurrent_processes_never_lose_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    config = BreakerConfig(failure_threshold=1000)
    stores = [BreakerStateStore(path) for _ in range(4)]

    def fail_many(store: BreakerStateStore) -> None:
        breaker = CircuitBreaker("db", config, store=store)
        for _ in range(25):
            breaker.record_failure(ConnectionError("x"))

    threads = [threading.Thread(target=fail_many, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].load("db").failures == 100  # type: ignore[union-attr]
    for store in stores:
        store.close()


def test_listeners_feed_metrics(tmp_path: Path) -> None:
    inst = Instrumentation(MetricsRegistry())
    clock = Clock()
    registry = BreakerRegistry(
        None, config=BreakerConfig(failure_threshold=1), instrumentation=inst, clock=clock
    )
    breaker = registry.get("llm:anthropic")
    assert registry.get("llm:anthropic") is breaker
    trip(breaker, 1)
    deltas = {(d.family, d.labels): d.value for d in inst.registry.take_deltas()}
    assert (
        deltas[
            ("assistant_circuit_breaker_state", (("service", "llm:anthropic"), ("state", "open")))
        ]
        == 1
    )
    assert (
        deltas[
            ("assistant_circuit_breaker_state", (("service", "llm:anthropic"), ("state", "closed")))
        ]
        == 0
    )
    key = (
        "assistant_circuit_breaker_transitions_total",
        (("service", "llm:anthropic"), ("from_state", "closed"), ("to_state", "open")),
    )
    assert deltas[key] == 1
