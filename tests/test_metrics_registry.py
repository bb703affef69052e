"""The in-process collector: definitions, wrong use, cardinality cap, deltas, threads."""

from __future__ import annotations

import math
import threading

import pytest

from assistant_monitoring.metrics.registry import OVERFLOW_VALUE, MetricsRegistry


def test_counter_gauge_histogram_record_deltas() -> None:
    registry = MetricsRegistry()
    runs = registry.counter("assistant_runs_total", "Runs.", ["status"])
    memory = registry.gauge("assistant_memory_bytes", "Memory.")
    latency = registry.histogram(
        "assistant_latency_seconds", "Latency.", ["stage"], buckets=[0.1, 1]
    )
    runs.labels("success").inc()
    runs.labels("success").inc(2)
    runs.labels_named(status="failure").inc()
    memory.set(1024)
    for value in (0.05, 0.5, 5.0, 0.0):
        latency.labels("generate").observe(value)
    deltas = {(d.family, d.labels): d for d in registry.take_deltas()}
    assert deltas[("assistant_runs_total", (("status", "success"),))].value == 3
    assert deltas[("assistant_runs_total", (("status", "failure"),))].value == 1
    assert deltas[("assistant_memory_bytes", ())].value == 1024
    hist = deltas[("assistant_latency_seconds", (("stage", "generate"),))]
    assert hist.count == 4
    assert hist.sum == pytest.approx(5.55)
    assert (hist.min, hist.max, hist.zero) == (0.0, 5.0, 1)
    assert hist.buckets == [2, 1, 1]  # <=0.1, <=1, +Inf
    assert sum(hist.bins.values()) == 3
    assert registry.take_deltas() == [], "a flush resets the deltas"


def test_restore_puts_back_what_a_failed_flush_took() -> None:
    registry = MetricsRegistry()
    runs = registry.counter("assistant_runs_total", "Runs.", ["status"])
    latency = registry.histogram("assistant_latency_seconds", "Latency.")
    runs.labels("ok").inc(5)
    latency.observe(0.2)
    taken = registry.take_deltas()
    runs.labels("ok").inc(1)
    registry.restore(taken)
    again = {d.family: d for d in registry.take_deltas()}
    assert again["assistant_runs_total"].value == 6
    assert again["assistant_latency_seconds"].count == 1


@pytest.mark.parametrize(
    ("factory", "name", "labels", "message"),
    [
        ("counter", "assistant runs", (), "invalid metric name"),
        ("counter", "assistant_runs", (), "must end in _total"),
        ("gauge", "assistant_x_total", (), "must not end in _total"),
        ("histogram", "assistant_x_count", (), "must not end in _bucket"),
        ("counter", "assistant_x_total", ("bad-label",), "invalid label name"),
        ("counter", "assistant_x_total", ("__reserved",), "invalid label name"),
        ("histogram", "assistant_x_seconds", ("le",), "'le' is reserved"),
        ("counter", "assistant_x_total", ("a", "a"), "duplicate label names"),
    ],
)
def test_bad_definitions_fail_at_once(
    factory: str, name: str, labels: tuple[str, ...], message: str
) -> None:
    registry = MetricsRegistry()
    with pytest.raises(ValueError, match=message):
        getattr(registry, factory)(name, "help", labels)


def test_wrong_use_fails_at_once() -> None:
    registry = MetricsRegistry()
    runs = registry.counter("assistant_runs_total", "Runs.", ["status", "stage"])
    with pytest.raises(ValueError, match="expected 2 label values"):
        runs.labels("only-one")
    with pytest.raises(ValueError, match=r"unknown \['colour'\], missing \['stage'\]"):
        runs.labels_named(status="ok", colour="red")
    with pytest.raises(ValueError, match="counters only go up"):
        runs.labels("ok", "x").inc(-1)
    latency = registry.histogram("assistant_latency_seconds", "Latency.")
    with pytest.raises(ValueError, match="values >= 0"):
        latency.observe(-0.1)
    with pytest.raises(ValueError, match="values >= 0"):
        latency.observe(math.nan)
    with pytest.raises(ValueError, match="another definition"):
        registry.counter("assistant_runs_total", "Runs.", ["status"])
    assert registry.counter("assistant_runs_total", "Runs.", ["status", "stage"]) is runs


def test_cardinality_cap_routes_to_overflow_counts_and_logs_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from loguru import logger

    logger.remove()
    logger.add(lambda message: print(message, end=""), level="WARNING", format="{message}")
    registry = MetricsRegistry(max_series=10)
    requests = registry.counter("assistant_requests_total", "Requests.", ["user"])
    for user in range(25):
        requests.labels(f"user-{user}").inc()
    values = [values for values, _ in requests.items()]
    assert len(values) == 11  # the cap, plus the one overflow series
    deltas = {d.labels: d.value for d in registry.take_deltas() if d.family == requests.name}
    assert deltas[(("user", OVERFLOW_VALUE),)] == 15
    assert requests.overflowed == 15
    assert registry.overflow.labels("assistant_requests_total").value == 0  # taken above
    out = capfd.readouterr().out
    assert out.count("reached 10 series") == 1


def test_threads_lose_no_increment() -> None:
    registry = MetricsRegistry()
    runs = registry.counter("assistant_runs_total", "Runs.", ["status"])
    latency = registry.histogram("assistant_latency_seconds", "Latency.")

    def work() -> None:
        for _ in range(20_000):
            runs.labels("ok").inc()
            latency.observe(0.01)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deltas = {d.family: d for d in registry.take_deltas()}
    assert deltas["assistant_runs_total"].value == 160_000
    assert deltas["assistant_latency_seconds"].count == 160_000
