"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0 of the store's totals.

Counters and histogram counts come from the all-time ``totals`` table, which
retention never deletes from, so what Prometheus scrapes never goes down.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

from assistant_monitoring.metrics.sketch import decode_counts

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    unit: str
    buckets: tuple[float, ...]


def escape_label_value(value: str) -> str:
    """Escape a label value: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, *, openmetrics: bool = False) -> str:
    """Escape HELP text: backslash and newline; OpenMetrics escapes double quotes too.

    The two formats differ here: Prometheus text 0.0.4 keeps ``"`` as it is in HELP,
    OpenMetrics 1.0 (its ABNF ``escaped-string``) requires ``\\"``.
    """
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return escaped.replace('"', '\\"') if openmetrics else escaped


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, infinities as +Inf/-Inf."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(pairs: list[tuple[str, str]], extra: tuple[str, str] | None = None) -> str:
    items = [*pairs, extra] if extra is not None else pairs
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in items) + "}"


def render_exposition(conn: sqlite3.Connection, *, openmetrics: bool = False) -> str:
    """The exposition text of every series in the store."""
    families = {
        name: _Family(name, kind, help_text, unit, tuple(json.loads(buckets)) if buckets else ())
        for name, kind, help_text, unit, buckets in conn.execute(
            "SELECT name, kind, help, unit, buckets FROM families"
        )
    }
    rows = conn.execute(
        """SELECT s.family, s.labels, t.value, t.count, t.sum, t.buckets
           FROM totals t JOIN series s ON s.id = t.series_id
           ORDER BY s.family, s.labels"""
    ).fetchall()
    by_family: dict[str, list[tuple[list[tuple[str, str]], float, int, float, bytes]]] = {}
    for family, labels, value, count, total, buckets in rows:
        pairs = [(str(k), str(v)) for k, v in json.loads(labels)]
        by_family.setdefault(family, []).append((pairs, value, count, total, buckets))

    lines: list[str] = []
    for name in sorted(by_family):
        family = families.get(name)
        if family is None:
            continue
        base = name[: -len("_total")] if openmetrics and family.kind == "counter" else name
        lines.append(f"# HELP {base} {escape_help(family.help, openmetrics=openmetrics)}")
        lines.append(f"# TYPE {base} {family.kind}")
        if openmetrics and family.unit and base.endswith("_" + family.unit):
            lines.append(f"# UNIT {base} {family.unit}")
        for pairs, value, count, total, buckets in by_family[name]:
            if family.kind == "histogram":
                counts = decode_counts(buckets or b"", len(family.buckets) + 1)
                running = 0
                for bound, bucket_count in zip(family.buckets, counts, strict=False):
                    running += bucket_count
                    le = ("le", repr(float(bound)))
                    lines.append(f"{name}_bucket{_labels(pairs, le)} {running}")
                lines.append(f"{name}_bucket{_labels(pairs, ('le', '+Inf'))} {count}")
                lines.append(f"{name}_sum{_labels(pairs)} {format_value(total)}")
                lines.append(f"{name}_count{_labels(pairs)} {count}")
            else:
                lines.append(f"{name}{_labels(pairs)} {format_value(value)}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"
