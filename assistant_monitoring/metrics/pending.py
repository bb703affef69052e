"""What could not be written while ``monitoring.db`` was locked, kept for the next process.

The folder ``monitoring.db.pending/`` holds runs (``run_*.json``, see ``runs.py``)
and metric deltas (``metrics-*.json``, here). Each file is written whole or not at
all (:func:`write_whole`); a file that is not one we wrote whole is renamed
``NAME.bad`` once, with a warning (:func:`set_aside`), so it never blocks the others
and is never read again; the hidden ``.tmp`` files a killed write left behind are
removed after an hour (:func:`candidates`).

Metric deltas that could not be written at exit:

A process whose last flush meets ``monitoring.db`` locked by another process past
``DATABASE_BUSY_TIMEOUT`` would otherwise lose what it counted (its tokens, its
cost). It writes the deltas, with the definitions of their families, to
``monitoring.db.pending/metrics-*.json`` (written aside, synced, renamed: whole or
not at all); the next flush of any process adds them in, at the minute they were
recorded, exactly once: the file's name is recorded in the store's ``meta`` table in
the same transaction, and a file already recorded is only removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant_monitoring.durable import write_atomically
from assistant_monitoring.metrics.registry import AnyFamily, SeriesDelta

PREFIX = "metrics-"
MERGE_AT_MOST = 50  # files per flush: a backlog goes in slices, never one long lock
_METRICS_FILE = re.compile("metrics-[0-9]+-[0-9a-f]{12}[.]json")
# A run with LOG_CONTENT keeps its prompt and answer: a few MB at the very most.
MAX_FILE_BYTES = 8 * 1024 * 1024
_STALE_PARTIAL_SECONDS = 3600


@dataclass(frozen=True)
class Waiting:
    """What waits in the pending folder (``assistant db check`` shows it)."""

    folder: Path
    runs: int
    flushes: int
    set_aside: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "runs": self.runs,
            "flushes": self.flushes,
            "set_aside": self.set_aside,
        }


def waiting(directory: Path) -> Waiting:
    """Count what waits in ``directory`` (never reads a file)."""
    runs = flushes = 0
    set_aside: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    for entry in entries:
        if entry.name.endswith(".bad"):
            set_aside.append(entry.name)
        elif _METRICS_FILE.fullmatch(entry.name):
            flushes += 1
        elif entry.name.startswith("run_") and entry.name.endswith(".json"):
            runs += 1
    return Waiting(directory, runs, flushes, sorted(set_aside))


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees all of it or nothing."""
    path.parent.mkdir(exist_ok=True)
    write_atomically(path, text.encode("utf-8"))


def candidates(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The regular files in ``directory`` whose names match ``pattern``, oldest first.

    Leftovers of a write a kill interrupted (``.NAME.PID.tmp``) an hour old are
    removed on the way: no process takes that long to write one file.
    """
    found: list[tuple[float, Path]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time()
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if entry.name.endswith(".tmp") and now - info.st_mtime > _STALE_PARTIAL_SECONDS:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        elif pattern.fullmatch(entry.name):
            found.append((info.st_mtime, Path(entry.path)))
    return [path for _, path in sorted(found)]


def read_capped(path: Path) -> str:
    """A pending file's text; ValueError past :data:`MAX_FILE_BYTES` (read no further)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"over {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8")


def set_aside(path: Path, problem: str) -> None:
    """Rename a file that is not one we wrote whole to ``NAME.bad``, and say so once."""
    target = path.with_name(path.name + ".bad")
    try:
        os.replace(path, target)
    except OSError:
        return
    from loguru import logger

    logger.warning(
        f"set aside {target}: not a pending record this version can take ({problem}); "
        "look at it, then delete it"
    )


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
    final = directory / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}.json"
    write_whole(final, json.dumps(document, allow_nan=False))
    return final


def pending(directory: Path) -> list[Path]:
    """The oldest spooled flushes first, at most :data:`MERGE_AT_MOST`."""
    return candidates(directory, _METRICS_FILE)[:MERGE_AT_MOST]


def load(path: Path) -> Pending | None:
    """A spooled flush, or None (the file set aside) when it is not one we wrote whole."""
    try:
        document = json.loads(read_capped(path))
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
    except (OSError, ValueError, KeyError, TypeError) as error:
        set_aside(path, f"{type(error).__name__}: {error}")
        return None
    known_kinds = {"counter", "gauge", "histogram"}
    if not math.isfinite(recorded_at) or any(f.kind not in known_kinds for f in families.values()):
        set_aside(path, "a time or a kind of metric this version does not know")
        return None
    if any(delta.family not in families for delta in deltas):
        set_aside(path, "a delta of an undeclared family")
        return None
    numbers = [n for d in deltas for n in (d.value, d.updated, d.sum, d.count, d.zero)]
    if not all(math.isfinite(n) for n in numbers):
        set_aside(path, "a number that is not finite")
        return None
    return Pending(path.name, recorded_at, families, deltas)


def _refused(path: Path, problem: str) -> None:
    set_aside(path, problem)


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
