"""Quantiles within 1% of exact for any positive distribution; exact merges."""

from __future__ import annotations

import random

import pytest

from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.metrics.sketch import (
    decode_dense,
    encode_dense,
    merge_dense,
    merge_many,
    quantile_from_dense,
)

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def lognormal(rng: random.Random, n: int) -> list[float]:
    return [rng.lognormvariate(-1.0, 1.2) for _ in range(n)]


def bimodal(rng: random.Random, n: int) -> list[float]:
    return [rng.gauss(0.05, 0.005) if rng.random() < 0.7 else rng.gauss(3.0, 0.4) for _ in range(n)]


def uniform(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(0.001, 10.0) for _ in range(n)]


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("distribution", [lognormal, bimodal, uniform])
def test_quantiles_within_one_percent(distribution) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(42)
    values = [abs(v) for v in distribution(rng, 50_000)]
    registry = MetricsRegistry()
    histogram = registry.histogram("assistant_x_seconds", "x")
    for value in values:
        histogram.observe(value)
    (delta,) = registry.take_deltas()
    blob = encode_dense(delta.bins)
    for q in QUANTILES:
        estimate = quantile_from_dense(
            blob, delta.zero, delta.count, q, low=delta.min, high=delta.max
        )
        exact = exact_quantile(values, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact <= 0.01, (q, estimate, exact)


def test_merged_sketches_answer_like_one() -> None:
    rng = random.Random(7)
    parts = [lognormal(rng, 5_000) for _ in range(6)]
    blobs = []
    for part in parts:
        registry = MetricsRegistry()
        histogram = registry.histogram("assistant_x_seconds", "x")
        for value in part:
            histogram.observe(value)
        (delta,) = registry.take_deltas()
        blobs.append(encode_dense(delta.bins))
    merged = merge_many(blobs)
    everything = [v for part in parts for v in part]
    pairwise = blobs[0]
    for blob in blobs[1:]:
        pairwise = merge_dense(pairwise, blob)
    assert decode_dense(pairwise) == decode_dense(merged)
    for q in QUANTILES:
        estimate = quantile_from_dense(
            merged, 0, len(everything), q, low=min(everything), high=max(everything)
        )
        exact = exact_quantile(everything, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact <= 0.01


def test_dense_encoding_round_trip_and_merge_equals_dict_addition() -> None:
    left = {-40: 3, -39: 1, 10: 7}
    right = {-100: 2, 10: 5, 300: 1}
    assert decode_dense(encode_dense(left)) == left
    merged = decode_dense(merge_dense(encode_dense(left), encode_dense(right)))
    expected = dict(left)
    for key, value in right.items():
        expected[key] = expected.get(key, 0) + value
    assert merged == expected
    assert merge_dense(b"", encode_dense(left)) == encode_dense(left)
    assert merge_many([]) == b""


def test_zero_values_and_empty() -> None:
    assert quantile_from_dense(b"", 0, 0, 0.5, low=0, high=0) is None
    assert quantile_from_dense(b"", 10, 10, 0.99, low=0, high=0) == 0.0
