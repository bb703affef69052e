"""Read aggregates back from ``monitoring.db`` for any time window.

A window is covered by whole days, whole hours and edge minutes (see
:func:`segments`), so a 30-day query reads ~200 rows per series, and every
aggregate (count, sum, min, max, sketch) merges exactly across them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field

from assistant_monitoring.metrics.sketch import merge_many, quantile_from_dense
from assistant_monitoring.metrics.store import DAY, HOUR, MINUTE, MINUTE_RETENTION_SECONDS

Labels = tuple[tuple[str, str], ...]


def _floor(value: int, step: int) -> int:
    return value // step * step


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def segments(start: int, end: int, *, now: int) -> list[tuple[int, int, int]]:
    """Cover ``[start, end)`` with (resolution, from, to) pieces, coarsest in the middle.

    Minute rows older than 48 hours are gone, so a window starting earlier begins at
    the hour (slightly wider, never narrower).
    """
    start, end = _floor(start, MINUTE), _ceil(end, MINUTE)
    if start < now - MINUTE_RETENTION_SECONDS + HOUR:
        start = _floor(start, HOUR)
    pieces: list[tuple[int, int, int]] = []

    def add(resolution: int, low: int, high: int) -> int:
        if high > low:
            pieces.append((resolution, low, high))
            return high
        return low

    cursor = add(MINUTE, start, min(_ceil(start, HOUR), end))
    cursor = add(HOUR, cursor, min(_ceil(cursor, DAY), _floor(end, HOUR)))
    cursor = add(DAY, cursor, _floor(end, DAY))
    cursor = add(HOUR, cursor, _floor(end, HOUR))
    add(MINUTE, cursor, end)
    return pieces


@dataclass
class SeriesAggregate:
    """One series over a window."""

    family: str
    kind: str
    labels: Labels
    value: float = 0.0
    updated: float = 0.0
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    zero: int = 0
    sketches: list[bytes] = field(default_factory=list)
    _merged: bytes | None = None

    def label(self, name: str) -> str:
        """The value of one label ('' when absent)."""
        return dict(self.labels).get(name, "")

    @property
    def mean(self) -> float | None:
        """Mean of a histogram's observations."""
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """A quantile (0..1) of a histogram, within the sketch's relative accuracy."""
        if self.count == 0:
            return None
        if self._merged is None:
            self._merged = merge_many(self.sketches)
        return quantile_from_dense(
            self._merged, self.zero, self.count, q, low=self.min, high=self.max
        )

    def merge(self, other: SeriesAggregate) -> SeriesAggregate:
        """Combine two series of one family (e.g. across label values)."""
        result = SeriesAggregate(self.family, self.kind, self.labels)
        result.value = self.value + other.value if self.kind != "gauge" else self.value
        result.updated = max(self.updated, other.updated)
        result.count = self.count + other.count
        result.sum = self.sum + other.sum
        result.min, result.max = min(self.min, other.min), max(self.max, other.max)
        result.zero = self.zero + other.zero
        result.sketches = [*self.sketches, *other.sketches]
        return result


@dataclass
class WindowData:
    """Every series that has data in a window."""

    start: float
    end: float
    series: list[SeriesAggregate]

    @property
    def seconds(self) -> float:
        """Length of the window."""
        return max(self.end - self.start, 1.0)

    def family(self, name: str) -> list[SeriesAggregate]:
        """The series of one family."""
        return [s for s in self.series if s.family == name]

    def total(self, name: str, **labels: str) -> float:
        """Sum of a counter family's series matching ``labels``."""
        return sum(
            s.value
            for s in self.family(name)
            if all(s.label(key) == value for key, value in labels.items())
        )

    def combined(self, name: str, **labels: str) -> SeriesAggregate | None:
        """One histogram aggregate over every series matching ``labels``."""
        result: SeriesAggregate | None = None
        for s in self.family(name):
            if all(s.label(key) == value for key, value in labels.items()):
                result = s if result is None else result.merge(s)
        return result


def query_window(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    *,
    now: float,
    families: tuple[str, ...] | None = None,
) -> WindowData:
    """Aggregate every series (or only those of ``families``) over ``[start, end)``."""
    pieces = segments(int(start), math.ceil(end), now=int(now))
    if not pieces:
        return WindowData(start, end, [])
    where = " OR ".join("(sm.resolution = ? AND sm.start >= ? AND sm.start < ?)" for _ in pieces)
    params: list[object] = [value for piece in pieces for value in piece]
    if families:
        where = f"({where}) AND s.family IN ({','.join('?' * len(families))})"
        params.extend(families)
    rows = conn.execute(
        f"""SELECT sm.series_id, s.family, s.labels, f.kind, sm.value, sm.updated, sm.count,
                   sm.sum, sm.min, sm.max, sm.zero, sm.sketch
            FROM samples sm
            JOIN series s ON s.id = sm.series_id
            JOIN families f ON f.name = s.family
            WHERE {where}""",
        params,
    ).fetchall()
    found: dict[int, SeriesAggregate] = {}
    for sid, family, labels, kind, value, updated, count, total, low, high, zero, sketch in rows:
        aggregate = found.get(sid)
        if aggregate is None:
            pairs = tuple((str(k), str(v)) for k, v in json.loads(labels))
            aggregate = found[sid] = SeriesAggregate(family, kind, pairs)
        if kind == "gauge":
            if updated >= aggregate.updated:
                aggregate.value, aggregate.updated = value, updated
            continue
        aggregate.value += value
        aggregate.updated = max(aggregate.updated, updated)
        if kind == "histogram" and count:
            aggregate.count += count
            aggregate.sum += total
            aggregate.zero += zero
            if low is not None:
                aggregate.min = min(aggregate.min, low)
            if high is not None:
                aggregate.max = max(aggregate.max, high)
            if sketch:
                aggregate.sketches.append(sketch)
    return WindowData(start, end, list(found.values()))


def minute_series(
    conn: sqlite3.Connection, family: str, start: float, end: float, **labels: str
) -> list[tuple[int, float]]:
    """Per-minute sums of a counter family over ``[start, end)`` (minutes without data: 0).

    Reads the minute rows (kept 48 hours); ``labels`` filters series by label value.
    """
    low, high = int(start) // MINUTE * MINUTE, -(-int(end) // MINUTE) * MINUTE
    rows = conn.execute(
        """SELECT sm.start, s.labels, sm.value FROM samples sm
           JOIN series s ON s.id = sm.series_id
           WHERE s.family = ? AND sm.resolution = ? AND sm.start >= ? AND sm.start < ?""",
        (family, MINUTE, low, high),
    ).fetchall()
    totals = dict.fromkeys(range(low, high, MINUTE), 0.0)
    for minute, raw_labels, value in rows:
        pairs = dict(json.loads(raw_labels))
        if all(pairs.get(key) == wanted for key, wanted in labels.items()):
            totals[minute] = totals.get(minute, 0.0) + value
    return sorted(totals.items())


def minute_quantiles(
    conn: sqlite3.Connection, family: str, start: float, end: float, quantiles: tuple[float, ...]
) -> dict[int, tuple[float | None, ...]]:
    """Per-minute quantiles of a histogram family (every series merged) over
    ``[start, end)``: {minute: (q1, q2, ...)}, minutes without observations left out.

    Exact to the sketch's accuracy per minute, as the window queries are.
    """
    low, high = int(start) // MINUTE * MINUTE, -(-int(end) // MINUTE) * MINUTE
    rows = conn.execute(
        """SELECT sm.start, sm.count, sm.sum, sm.min, sm.max, sm.zero, sm.sketch FROM samples sm
           JOIN series s ON s.id = sm.series_id
           WHERE s.family = ? AND sm.resolution = ? AND sm.start >= ? AND sm.start < ?""",
        (family, MINUTE, low, high),
    ).fetchall()
    minutes: dict[int, SeriesAggregate] = {}
    for minute, count, total, smallest, largest, zero, sketch in rows:
        if not count:
            continue
        aggregate = minutes.setdefault(minute, SeriesAggregate(family, "histogram", ()))
        aggregate.count += count
        aggregate.sum += total
        aggregate.min = min(aggregate.min, smallest if smallest is not None else math.inf)
        aggregate.max = max(aggregate.max, largest if largest is not None else -math.inf)
        aggregate.zero += zero
        if sketch:
            aggregate.sketches.append(sketch)
    return {
        minute: tuple(aggregate.quantile(q) for q in quantiles)
        for minute, aggregate in sorted(minutes.items())
    }
