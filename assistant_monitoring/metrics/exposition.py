"""Prometheus text (0.0.4) and OpenMetrics 1.0 of the store's totals, by prometheus_client.

Our registry and SQLite store stay the source (3-4x faster than prometheus_client on
the hot path, and they add up every process's samples, which prometheus_client's
registry cannot): :class:`StoreCollector` is a prometheus_client collector over the
store, and prometheus_client's own encoders write the formats, so escaping, the
counter ``_total`` rules, ``# UNIT`` and ``# EOF`` are the reference
implementation's, not ours. Content negotiation is its ``choose_encoder``.

Counters and histogram counts come from the all-time ``totals`` table, which
retention never deletes from, so what Prometheus scrapes never goes down.

prometheus_client is imported only here, and only when an exposition is asked for
(``monitor serve``'s /metrics, ``monitor metrics --format prometheus``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant_monitoring.metrics.sketch import decode_counts

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class StoreCollector:
    """A prometheus_client collector that reads every series of a store's totals."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        families = {
            name: (kind, help_text, unit, tuple(json.loads(buckets)) if buckets else ())
            for name, kind, help_text, unit, buckets in self._conn.execute(
                "SELECT name, kind, help, unit, buckets FROM families"
            )
        }
        rows = self._conn.execute(
            """SELECT s.family, s.labels, t.value, t.count, t.sum, t.buckets
               FROM totals t JOIN series s ON s.id = t.series_id
               ORDER BY s.family, s.labels"""
        )
        metric: Metric | None = None
        current = ""
        bounds: tuple[float, ...] = ()
        kind = ""
        for family, labels, value, count, total, buckets in rows:
            if family != current:
                if metric is not None:
                    yield metric
                metric, current = None, family
                known = families.get(family)
                if known is None:
                    continue
                kind, help_text, unit, bounds = known
                # prometheus_client wants the unit as the name's suffix (before
                # _total), as OpenMetrics does; a family named otherwise goes without.
                base = family.removesuffix("_total") if kind == "counter" else family
                metric = Metric(base, help_text, kind, unit if base.endswith("_" + unit) else "")
            if metric is None:
                continue
            pairs = {str(k): str(v) for k, v in json.loads(labels)}
            if kind == "histogram":
                _add_histogram(metric, pairs, bounds, count, total, buckets)
            else:
                name = metric.name + "_total" if kind == "counter" else metric.name
                metric.add_sample(name, pairs, value)
        if metric is not None:
            yield metric


def _add_histogram(
    metric: Metric,
    labels: dict[str, str],
    bounds: tuple[float, ...],
    count: int,
    total: float,
    buckets: bytes | None,
) -> None:
    running = 0
    counts = decode_counts(buckets or b"", len(bounds) + 1)
    for bound, bucket_count in zip(bounds, counts, strict=False):
        running += bucket_count
        metric.add_sample(metric.name + "_bucket", {**labels, "le": repr(float(bound))}, running)
    metric.add_sample(metric.name + "_bucket", {**labels, "le": "+Inf"}, count)
    metric.add_sample(metric.name + "_count", labels, count)
    metric.add_sample(metric.name + "_sum", labels, total)


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header prefers OpenMetrics, by prometheus_client's rules."""
    from prometheus_client.exposition import choose_encoder

    _, content_type = choose_encoder(accept)
    return content_type.startswith("application/openmetrics-text")


def encode(conn: sqlite3.Connection, *, openmetrics: bool = False) -> bytes:
    """The exposition of every series in the store, in one of the two formats."""
    from prometheus_client import exposition
    from prometheus_client.openmetrics import exposition as openmetrics_exposition

    collector: Any = StoreCollector(conn)  # a registry is anything with collect()
    if openmetrics:
        return bytes(openmetrics_exposition.generate_latest(collector))  # type: ignore[no-untyped-call]
    return exposition.generate_latest(collector)


def render_exposition(conn: sqlite3.Connection, *, openmetrics: bool = False) -> str:
    """:func:`encode` as text."""
    return encode(conn, openmetrics=openmetrics).decode()
