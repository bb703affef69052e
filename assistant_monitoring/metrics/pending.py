"""Metric deltas that could not be written at exit, kept for the next process.

A process whose last flush meets ``monitoring.db`` locked by another process past
``DATABASE_BUSY_TIMEOUT`` would otherwise lose what it counted (its tokens, its
cost). It writes the deltas, with the definitions of their families, to
``monitoring.db.pending/metrics-*.json`` (written aside, synced, renamed: whole or
not at all); the next flush of any process adds them in, at the minute they were
recorded, exactly once: the file's name is recorded in the store's ``meta`` table in
the same transaction, and a file already recorded is only removed.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant_monitoring.metrics.registry import AnyFamily, SeriesDelta

PREFIX = "metrics-"
MERGE_AT_MOST = 50  # files per flush: a backlog goes in slices, never one long lock
_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SpooledFamily:
    """What the store needs of a family to merge its deltas (see ``MetricsStore``)."""

    name: str
    kind: str
    help: str
    unit: str
    labelnames: tuple[str, ...]
    buckets: tuple[float, ...] | None


@dataclass(frozen=True)
class Pending:
    """One spooled flush."""

    name: str
    recorded_at: float
    families: dict[str, SpooledFamily]
    deltas: list[SeriesDelta]


def spool(
    directory: Path, families: Iterable[AnyFamily], deltas: list[SeriesDelta], now: float
) -> Path:
    """Write ``deltas`` (and their families) to a new file in ``directory``."""
    used = {delta.family for delta in deltas}
    document = {
        "recorded_at": now,
        "families": [_family(family) for family in families if family.name in used],
        "deltas": [_delta(delta) for delta in deltas],
    }
    directory.mkdir(exist_ok=True)
    final = directory / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}.json"
    partial = final.with_name(f".{final.name}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    return final


def pending(directory: Path) -> list[Path]:
    """The oldest spooled files first, at most :data:`MERGE_AT_MOST`."""
    try:
        entries = [
            entry
            for entry in os.scandir(directory)
            if entry.name.startswith(PREFIX)
            and entry.name.endswith(".json")
            and entry.is_file(follow_symlinks=False)
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime)
    return [Path(entry.path) for entry in entries[:MERGE_AT_MOST]]


def load(path: Path) -> Pending | None:
    """A spooled flush, or None when the file is not one this module wrote whole."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        families = {
            row["name"]: SpooledFamily(
                str(row["name"]),
                str(row["kind"]),
                str(row["help"]),
                str(row["unit"]),
                tuple(str(label) for label in row["labelnames"]),
                None if row["buckets"] is None else tuple(float(b) for b in row["buckets"]),
            )
            for row in document["families"]
        }
        deltas = [_from_json(row) for row in document["deltas"]]
        recorded_at = float(document["recorded_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    known_kinds = {"counter", "gauge", "histogram"}
    if not math.isfinite(recorded_at) or any(f.kind not in known_kinds for f in families.values()):
        return None
    if any(delta.family not in families for delta in deltas):
        return None
    return Pending(path.name, recorded_at, families, deltas)


def _family(family: AnyFamily) -> dict[str, Any]:
    buckets = getattr(family, "buckets", None)
    return {
        "name": family.name,
        "kind": family.kind,
        "help": family.help,
        "unit": family.unit,
        "labelnames": list(family.labelnames),
        "buckets": None if buckets is None else list(buckets),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _delta(delta: SeriesDelta) -> dict[str, Any]:
    return {
        "family": delta.family,
        "labels": [list(pair) for pair in delta.labels],
        "value": delta.value,
        "updated": delta.updated,
        "count": delta.count,
        "sum": delta.sum,
        "min": _finite(delta.min),
        "max": _finite(delta.max),
        "zero": delta.zero,
        "bins": [[index, count] for index, count in delta.bins.items()],
        "buckets": list(delta.buckets),
    }


def _from_json(row: dict[str, Any]) -> SeriesDelta:
    return SeriesDelta(
        family=str(row["family"]),
        labels=tuple((str(name), str(value)) for name, value in row["labels"]),
        value=float(row["value"]),
        updated=float(row["updated"]),
        count=int(row["count"]),
        sum=float(row["sum"]),
        min=math.inf if row["min"] is None else float(row["min"]),
        max=-math.inf if row["max"] is None else float(row["max"]),
        zero=int(row["zero"]),
        bins={int(index): int(count) for index, count in row["bins"]},
        buckets=[int(count) for count in row["buckets"]],
    )
