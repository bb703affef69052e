"""The health monitor and each built-in check's distinct, actionable messages."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.breaker import BreakerConfig, BreakerStateStore, CircuitBreaker
from assistant_monitoring.health import CheckOutcome, HealthCheck, HealthMonitor, Status
from assistant_monitoring.health.checks import (
    check_breakers_sync,
    check_database_sync,
    check_disk_sync,
    check_llm_sync,
    check_memory_sync,
)


def outcome(status: Status, message: str = "m"):  # type: ignore[no-untyped-def]
    async def run() -> CheckOutcome:
        return CheckOutcome(status, message)

    return run


def test_aggregation_worst_wins_and_non_critical_only_degrades() -> None:
    def report(*checks: HealthCheck):  # type: ignore[no-untyped-def]
        return asyncio.run(HealthMonitor(checks).run())

    healthy = HealthCheck("a", outcome(Status.HEALTHY))
    degraded = HealthCheck("b", outcome(Status.DEGRADED))
    unhealthy = HealthCheck("c", outcome(Status.UNHEALTHY))
    optional = HealthCheck("d", outcome(Status.UNHEALTHY), critical=False)
    assert report(healthy).status is Status.HEALTHY
    assert report(healthy, degraded).status is Status.DEGRADED
    assert report(healthy, degraded, unhealthy).status is Status.UNHEALTHY
    result = report(healthy, optional)
    assert result.status is Status.DEGRADED
    assert result.checks[1].status is Status.DEGRADED


def test_checks_run_concurrently_and_time_out_with_the_reason() -> None:
    async def slow() -> CheckOutcome:
        await asyncio.sleep(10)
        return CheckOutcome(Status.HEALTHY, "never")

    async def broken() -> CheckOutcome:
        raise RuntimeError("boom")

    async def quick_sleep() -> CheckOutcome:
        await asyncio.sleep(0.2)
        return CheckOutcome(Status.HEALTHY, "ok")

    monitor = HealthMonitor(
        [
            HealthCheck("slow", slow, timeout_seconds=0.3),
            HealthCheck("broken", broken),
            HealthCheck("sleep1", quick_sleep),
            HealthCheck("sleep2", quick_sleep),
        ]
    )
    started = time.perf_counter()
    report = asyncio.run(monitor.run())
    elapsed = time.perf_counter() - started
    assert elapsed < 2, "checks must run concurrently"
    by_name = {c.name: c for c in report.checks}
    assert by_name["slow"].status is Status.UNHEALTHY
    assert by_name["slow"].message == "timed out after 0.3s"
    assert by_name["slow"].duration_seconds >= 0.3
    assert by_name["broken"].message == "check failed: RuntimeError: boom"
    capped = asyncio.run(monitor.run(["slow"], total_timeout=0.1))
    assert capped.checks[0].message == "timed out after 0.1s"


def test_health_json_shape() -> None:
    monitor = HealthMonitor(
        [
            HealthCheck(
                "database",
                outcome(Status.DEGRADED, "slow"),
                component="database",
                measurement="responseTime",
            )
        ]
    )
    document = asyncio.run(monitor.run()).as_json(version="1.2.3")
    assert document["status"] == "warn"
    (entry,) = document["checks"]["database:responseTime"]
    assert entry["status"] == "warn"
    assert entry["output"] == "slow"
    assert "time" in entry


# -- database ---------------------------------------------------------------------


def make_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    return path


def test_database_states(tmp_path: Path) -> None:
    check = lambda p, slow=100.0: check_database_sync(p, slow_ms=slow, busy_timeout_ms=1000)  # noqa: E731
    missing_dir = check(tmp_path / "nope" / "assistant.db")
    assert missing_dir.status is Status.UNHEALTHY
    assert "data directory" in missing_dir.message
    not_created = check(tmp_path / "assistant.db")
    assert not_created.status is Status.DEGRADED
    assert "assistant db migrate" in not_created.message
    db = make_db(tmp_path / "assistant.db")
    ok = check(db)
    assert ok.status is Status.HEALTHY
    assert ok.observed_unit == "ms"
    slow = check(db, slow=0.000001)
    assert slow.status is Status.DEGRADED
    assert slow.message.startswith("slow: SELECT 1 took")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    result = check(corrupt)
    assert result.status is Status.UNHEALTHY
    assert "corrupt" in result.message


def test_database_locked(tmp_path: Path) -> None:
    db = make_db(tmp_path / "assistant.db")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = check_database_sync(db, slow_ms=100, busy_timeout_ms=1000)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.status is Status.UNHEALTHY
    assert "locked by another process" in result.message


# -- LLM ----------------------------------------------------------------------------


def llm(
    provider: str, key: str | None, url: str | None, timeout: float = 2.0, slow: float = 5.0
) -> CheckOutcome:
    return check_llm_sync(
        provider,
        key,
        url,
        timeout=timeout,
        slow_seconds=slow,
        key_where="LLM_API_KEY in /srv/.env.production or the environment",
    )


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("suffix", ["", "/v1"])
def test_llm_check_against_the_stub(provider: str, suffix: str) -> None:
    with StubLLMServer() as stub:
        result = llm(provider, "sk-test-00000000", stub.url + suffix)
        assert result.status is Status.HEALTHY, result.message
        assert result.observed_unit == "ms"
        assert [r.path for r in stub.requests] == ["/v1/models"]
        assert stub.requests[0].api == provider


def test_llm_check_messages() -> None:
    no_key = llm("anthropic", None, None)
    assert no_key.status is Status.UNHEALTHY
    assert no_key.message == (
        "no API key for Anthropic: set LLM_API_KEY in /srv/.env.production or the environment"
    )
    with StubLLMServer(required_key="the-right-key-0") as stub:
        rejected = llm("anthropic", "wrong-key-00000", stub.url)
        assert rejected.message == (
            "Anthropic rejected the API key (401): check LLM_API_KEY in /srv/.env.production "
            "or the environment"
        )
        stub.push_faults("429:30")
        limited = llm("openai", "the-right-key-0", stub.url)
        assert limited.status is Status.DEGRADED
        assert limited.message == "OpenAI is rate limiting us (429), retry after 30s"
        stub.push_faults("503")
        down = llm("anthropic", "the-right-key-0", stub.url)
        assert down.status is Status.UNHEALTHY
        assert "server error (503)" in down.message
        stub.push_faults("slow:1.5")
        timed_out = llm("anthropic", "the-right-key-0", stub.url, timeout=0.5)
        assert timed_out.status is Status.UNHEALTHY
        assert "did not answer within 0.5s" in timed_out.message
        stub.plan.latency = 0.2
        slow = llm("anthropic", "the-right-key-0", stub.url, slow=0.1)
        assert slow.status is Status.DEGRADED
        assert "answered slowly" in slow.message
        stub.plan.latency = 0
        url = stub.url
    refused = llm("anthropic", "key-00000000", url)  # the server is gone now
    assert refused.status is Status.UNHEALTHY
    assert "connection refused" in refused.message


def test_llm_check_bad_path_says_check_base_url() -> None:
    with StubLLMServer() as stub:
        result = llm("anthropic", "key-00000000", stub.url + "/api/proxy")
    assert "check LLM_BASE_URL" in result.message


# -- memory, disk, breakers --------------------------------------------------------------


def test_memory_thresholds() -> None:
    assert (
        check_memory_sync(limit_bytes=None, degraded_percent=99.9, unhealthy_percent=100).status
        is Status.HEALTHY
    )
    assert (
        check_memory_sync(limit_bytes=None, degraded_percent=0.01, unhealthy_percent=100).status
        is Status.DEGRADED
    )
    over = check_memory_sync(limit_bytes=1024 * 1024, degraded_percent=75, unhealthy_percent=90)
    assert over.status is Status.UNHEALTHY
    assert "of its 1 MiB limit" in over.message


def test_disk_thresholds(tmp_path: Path) -> None:
    paths = [tmp_path / "data", tmp_path / "data" / "logs"]  # not created: their parent counts
    assert (
        check_disk_sync(paths, degraded_free_percent=0, unhealthy_free_percent=0).status
        is Status.HEALTHY
    )
    low = check_disk_sync(paths, degraded_free_percent=100, unhealthy_free_percent=0)
    assert low.status is Status.DEGRADED
    assert low.observed_unit == "%"
    assert (
        check_disk_sync(paths, degraded_free_percent=100, unhealthy_free_percent=100).status
        is Status.UNHEALTHY
    )


def test_open_breaker_degrades(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    assert check_breakers_sync(path).status is Status.HEALTHY
    breaker = CircuitBreaker(
        "llm:anthropic", BreakerConfig(failure_threshold=1), store=BreakerStateStore(path)
    )
    breaker.record_failure(ConnectionError("down"))
    result = check_breakers_sync(path)
    assert result.status is Status.DEGRADED
    assert result.message.startswith("llm:anthropic open (retry in")
    assert result.observed_value == 1


def test_threads_see_each_check_once() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def named(name: str):  # type: ignore[no-untyped-def]
        async def run() -> CheckOutcome:
            with lock:
                seen.append(name)
            return CheckOutcome(Status.HEALTHY, name)

        return run

    monitor = HealthMonitor([HealthCheck(n, named(n)) for n in ("x", "y", "z")])
    asyncio.run(monitor.run(["x", "z"]))
    assert sorted(seen) == ["x", "z"]
