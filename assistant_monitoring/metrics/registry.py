"""In-process metrics: Counter, Gauge and Histogram families with declared labels.

Each family holds one child per label-value tuple; a child accumulates what happened
since the last flush (a delta). :meth:`MetricsRegistry.take_deltas` hands those to
the store and resets them, so a short CLI process and a long-lived server record the
same way and the store adds up every process's share.

Speed matters on the hot path (a pipeline records a dozen observations): looking a
child up is one dict access on the tuple of label values, and a child update holds
its own small lock only around the arithmetic.

Wrong use fails at once with ValueError: a bad metric or label name, a missing or
unknown label, a negative counter increment, a negative or NaN observation.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from assistant_monitoring.metrics.labels import INVALID_VALUE, LabelRule
from assistant_monitoring.metrics.sketch import INV_LOG_GAMMA, MIN_POSITIVE

Kind = Literal["counter", "gauge", "histogram"]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
OVERFLOW_VALUE = "__overflow__"
OVERFLOW_FAMILY = "assistant_metric_overflow_total"
INVALID_FAMILY = "assistant_metric_invalid_labels_total"
DEFAULT_MAX_SERIES = 1000
# Bound once: global and attribute look-ups show on a path that runs ~1 us.
_log, _ceil, _bisect_left, _INF = math.log, math.ceil, bisect.bisect_left, math.inf

# Prometheus's default buckets, for histograms that declare none.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class CounterChild:
    """One counter series: a monotonic delta since the last flush."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""
        if amount < 0:
            raise ValueError(f"counters only go up: cannot add {amount}")
        with self._lock:
            self.value += amount


class GaugeChild:
    """One gauge series: the latest value and when it was set."""

    __slots__ = ("_lock", "dirty", "updated", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0
        self.updated = 0.0
        self.dirty = False

    def set(self, value: float) -> None:
        """Set the current value."""
        with self._lock:
            self.value = float(value)
            self.updated = time.time()
            self.dirty = True

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (may be negative)."""
        with self._lock:
            self.value += amount
            self.updated = time.time()
            self.dirty = True

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.inc(-amount)


class HistogramChild:
    """One histogram series: count, sum, min, max, sketch bins and exact ``le`` buckets."""

    __slots__ = ("_bounds", "_lock", "bins", "buckets", "count", "max", "min", "sum", "zero")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._lock = threading.Lock()
        self._bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.bins: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero = 0

    def observe(self, value: float) -> None:
        """Record one value (>= 0; durations in seconds)."""
        if MIN_POSITIVE < value < _INF:
            index: int | None = _ceil(_log(value) * INV_LOG_GAMMA)
        elif 0 <= value <= MIN_POSITIVE:  # also rejects NaN and infinity
            index = None
        else:
            raise ValueError(f"histograms take finite values >= 0, got {value}")
        bucket = _bisect_left(self._bounds, value)
        with self._lock:
            self.count += 1
            self.sum += value
            self.min = min(self.min, value)
            self.max = max(self.max, value)
            self.buckets[bucket] += 1
            if index is None:
                self.zero += 1
            else:
                bins = self.bins
                bins[index] = bins.get(index, 0) + 1


Child = CounterChild | GaugeChild | HistogramChild
C = TypeVar("C", CounterChild, GaugeChild, HistogramChild)


@dataclass
class SeriesDelta:
    """What one series did since the last flush, as handed to the store."""

    family: str
    labels: tuple[tuple[str, str], ...]
    value: float = 0.0  # counter increment, or gauge value
    updated: float = 0.0  # gauge: when it was set
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    zero: int = 0
    bins: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=list)


class MetricFamily(Generic[C]):
    """A named metric with declared label names; children per label-value tuple."""

    kind: Kind

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        unit: str = "",
        max_series: int = DEFAULT_MAX_SERIES,
        rules: Mapping[str, LabelRule] | None = None,
    ) -> None:
        _check_names(name, labelnames, self.kind)
        unknown = set(rules or ()) - set(labelnames)
        if unknown:
            raise ValueError(f"{name}: rules for undeclared labels {sorted(unknown)}")
        self.name = name
        self.help = help
        self.unit = unit
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self.overflowed = 0
        self.invalid = 0
        # Per label position, the rule its values must follow (None: any value).
        self._rules: tuple[LabelRule | None, ...] | None = (
            tuple((rules or {}).get(label) for label in self.labelnames) if rules else None
        )
        # Set by the registry: count overflows and invalid values in families of their own.
        self.overflow_counter: Counter | None = None
        self.invalid_counter: Counter | None = None
        self._children: dict[tuple[str, ...], C] = {}
        self._lock = threading.Lock()

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        """The series for these label values, in declared order (cached)."""
        try:
            return self._children[values]
        except KeyError:
            return self._child(values, {})

    def labels_named(self, **named: str) -> C:
        """The series for these label values, given by name."""
        return self._child((), named)

    def _child(self, values: tuple[str, ...], named: Mapping[str, object]) -> C:
        if named:
            if values:
                raise ValueError(f"{self.name}: give label values by position or by name")
            unknown = set(named) - set(self.labelnames)
            missing = [n for n in self.labelnames if n not in named]
            if unknown or missing:
                raise ValueError(
                    f"{self.name}: labels are {list(self.labelnames)}; "
                    f"unknown {sorted(unknown)}, missing {missing}"
                )
            values = tuple(str(named[n]) for n in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name}: expected {len(self.labelnames)} label values "
                f"{list(self.labelnames)}, got {len(values)}"
            )
        else:
            values = tuple(str(v) for v in values)
        child = self._children.get(values)
        if child is not None:
            return child
        if self._rules is not None:
            values = self._checked(values)
            child = self._children.get(values)
            if child is not None:
                return child
        with self._lock:
            child = self._children.get(values)
            if child is not None:
                return child
            if len(self._children) >= self.max_series:
                return self._overflow()
            child = self._children[values] = self._new_child()
            return child

    def _checked(self, values: tuple[str, ...]) -> tuple[str, ...]:
        """``values`` with each one that breaks its label's rule replaced by __invalid__."""
        assert self._rules is not None
        checked = tuple(
            value if rule is None or rule(value) else INVALID_VALUE
            for value, rule in zip(values, self._rules, strict=True)
        )
        if checked != values:
            # Never the value itself in the log: it may be the very text that must not leak.
            self.invalid += 1
            if self.invalid_counter is not None:
                self.invalid_counter.labels(self.name).inc()
            if self.invalid == 1:
                _warn_invalid(self, values, checked)
        return checked

    def _overflow(self) -> C:
        # Past the cap, new label combinations share one series: memory stays
        # bounded and the overflow is visible (counted, logged once) instead of silent.
        self.overflowed += 1
        if self.overflow_counter is not None:
            self.overflow_counter.labels(self.name).inc()
        key = (OVERFLOW_VALUE,) * len(self.labelnames)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
            _warn_overflow(self)
        return child

    def items(self) -> list[tuple[tuple[str, ...], C]]:
        """A snapshot of (label values, child) pairs."""
        with self._lock:
            return list(self._children.items())


# Any family, whatever its child type (what the registry and the store handle).
AnyFamily = MetricFamily[Any]


class Counter(MetricFamily[CounterChild]):
    """A monotonic counter family; its name ends in ``_total``."""

    kind: Kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        """Increment the unlabelled series."""
        self.labels().inc(amount)


class Gauge(MetricFamily[GaugeChild]):
    """A gauge family: the latest value wins across processes."""

    kind: Kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        """Set the unlabelled series."""
        self.labels().set(value)


class Histogram(MetricFamily[HistogramChild]):
    """A histogram family: quantiles from a sketch, exact counts for ``le`` buckets."""

    kind: Kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        unit: str = "",
        max_series: int = DEFAULT_MAX_SERIES,
        rules: Mapping[str, LabelRule] | None = None,
    ) -> None:
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct finite numbers")
        self.buckets = bounds
        super().__init__(name, help, labelnames, unit=unit, max_series=max_series, rules=rules)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets)

    def observe(self, value: float) -> None:
        """Observe on the unlabelled series."""
        self.labels().observe(value)


class MetricsRegistry:
    """The families of one process. Inject a fresh one in tests."""

    def __init__(self, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.max_series = max_series
        self._families: dict[str, AnyFamily] = {}
        self._lock = threading.Lock()
        self.overflow = self.counter(
            OVERFLOW_FAMILY,
            "Observations recorded under __overflow__ because a metric hit its series cap.",
            ["metric"],
        )
        self.invalid = self.counter(
            INVALID_FAMILY,
            "Observations recorded under __invalid__ because a label value broke its rule.",
            ["metric"],
        )

    def _register(self, family: AnyFamily) -> AnyFamily:
        if family.name not in (OVERFLOW_FAMILY, INVALID_FAMILY):
            family.overflow_counter = self.overflow
            family.invalid_counter = self.invalid
        with self._lock:
            existing = self._families.get(family.name)
            if existing is None:
                self._families[family.name] = family
                return family
            same = (
                type(existing) is type(family)
                and existing.labelnames == family.labelnames
                and getattr(existing, "buckets", None) == getattr(family, "buckets", None)
            )
            if not same:
                raise ValueError(f"{family.name} is already registered with another definition")
            return existing

    def counter(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        rules: Mapping[str, LabelRule] | None = None,
    ) -> Counter:
        """Declare (or get) a counter family; ``rules`` say what values each label takes."""
        family = Counter(name, help, labelnames, max_series=self.max_series, rules=rules)
        return self._register(family)  # type: ignore[return-value]

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        unit: str = "",
        *,
        rules: Mapping[str, LabelRule] | None = None,
    ) -> Gauge:
        """Declare (or get) a gauge family."""
        family = Gauge(name, help, labelnames, unit=unit, max_series=self.max_series, rules=rules)
        return self._register(family)  # type: ignore[return-value]

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        unit: str = "",
        rules: Mapping[str, LabelRule] | None = None,
    ) -> Histogram:
        """Declare (or get) a histogram family."""
        family = Histogram(
            name,
            help,
            labelnames,
            buckets=buckets,
            unit=unit,
            max_series=self.max_series,
            rules=rules,
        )
        return self._register(family)  # type: ignore[return-value]

    def families(self) -> list[AnyFamily]:
        """Every registered family."""
        with self._lock:
            return list(self._families.values())

    def get(self, name: str) -> AnyFamily | None:
        """A family by name."""
        return self._families.get(name)

    def take_deltas(self) -> list[SeriesDelta]:
        """Everything recorded since the last call, resetting it (the flush)."""
        deltas: list[SeriesDelta] = []
        for family in self.families():
            for values, child in family.items():
                labels = tuple(zip(family.labelnames, values, strict=True))
                delta = _take(family.name, labels, child)
                if delta is not None:
                    deltas.append(delta)
        return deltas

    def restore(self, deltas: Iterable[SeriesDelta]) -> None:
        """Put back deltas a failed flush could not store, so nothing is lost."""
        for delta in deltas:
            family = self._families.get(delta.family)
            if family is None:
                continue
            child = family._child(tuple(v for _, v in delta.labels), {})
            _give_back(child, delta)


def _take(name: str, labels: tuple[tuple[str, str], ...], child: Child) -> SeriesDelta | None:
    if isinstance(child, CounterChild):
        with child._lock:
            value, child.value = child.value, 0.0
        return SeriesDelta(name, labels, value=value) if value else None
    if isinstance(child, GaugeChild):
        with child._lock:
            if not child.dirty:
                return None
            child.dirty = False
            return SeriesDelta(name, labels, value=child.value, updated=child.updated)
    with child._lock:
        if not child.count:
            return None
        delta = SeriesDelta(
            name,
            labels,
            count=child.count,
            sum=child.sum,
            min=child.min,
            max=child.max,
            zero=child.zero,
            bins=child.bins,
            buckets=child.buckets,
        )
        child.count, child.sum, child.zero = 0, 0.0, 0
        child.min, child.max = math.inf, -math.inf
        child.bins = {}
        child.buckets = [0] * len(child.buckets)
    return delta


def _give_back(child: Child, delta: SeriesDelta) -> None:
    if isinstance(child, CounterChild):
        child.inc(delta.value)
    elif isinstance(child, GaugeChild):
        with child._lock:
            if not child.dirty:
                child.value, child.updated, child.dirty = delta.value, delta.updated, True
    else:
        with child._lock:
            child.count += delta.count
            child.sum += delta.sum
            child.zero += delta.zero
            child.min = min(child.min, delta.min)
            child.max = max(child.max, delta.max)
            for index, count in delta.bins.items():
                child.bins[index] = child.bins.get(index, 0) + count
            for index, count in enumerate(delta.buckets):
                child.buckets[index] += count


def _check_names(name: str, labelnames: Sequence[str], kind: Kind) -> None:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}: use [a-zA-Z_:][a-zA-Z0-9_:]*")
    if kind == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    if kind != "counter" and name.endswith("_total"):
        raise ValueError(f"{kind} {name!r} must not end in _total (that suffix means counter)")
    if kind == "histogram" and name.endswith(("_bucket", "_count", "_sum")):
        raise ValueError(f"histogram {name!r} must not end in _bucket, _count or _sum")
    if len(set(labelnames)) != len(labelnames):
        raise ValueError(f"{name}: duplicate label names {list(labelnames)}")
    for label in labelnames:
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            raise ValueError(f"{name}: invalid label name {label!r}")
        if kind == "histogram" and label == "le":
            raise ValueError(f"{name}: 'le' is reserved for histogram buckets")


def _warn_invalid(family: AnyFamily, values: tuple[str, ...], checked: tuple[str, ...]) -> None:
    from loguru import logger

    broken = [
        name
        for name, value, kept in zip(family.labelnames, values, checked, strict=True)
        if value != kept
    ]
    logger.warning(
        f"metric {family.name}: a value of label {', '.join(broken)} broke its rule and is "
        f"counted under {INVALID_VALUE!r} (a bug: label values must come from closed sets)"
    )


def _warn_overflow(family: AnyFamily) -> None:
    from loguru import logger

    logger.warning(
        f"metric {family.name} reached {family.max_series} series: new label values are "
        f"counted under {OVERFLOW_VALUE!r}; check that no identifier is used as a label"
    )
