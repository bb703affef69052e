"""Time zones for usage reports: which zone, and where its UTC offset changes.

Day boundaries are the zone's local midnights, so a day is 23 or 25 hours long
across a daylight-saving change (ccusage #778, #1195 grouped by UTC or by a fixed
offset). Only the standard library, and not even dataclasses or pathlib: the
statusline imports this module, and each of those costs it milliseconds.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assistant_monitoring.errors import UsageError, shown

_DAY = 86400


def resolve_zone(name: str | None, *, option: str = "--tz") -> tzinfo:
    """The zone named ``name`` (IANA, e.g. ``Europe/Paris``; ``UTC``), else the local one.

    Raises UsageError naming ``option`` for a name the tz database does not know.
    """
    if name is None or not name.strip():
        return local_zone()
    text = name.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    # ZoneInfo reads a file named by the key: refuse anything that is not a key.
    if not text.isascii() or not text.isprintable() or ".." in text or text.startswith("/"):
        raise UsageError(
            f"{option}: not a time zone name such as Europe/Paris (got '{shown(text)}')"
        )
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"{option}: unknown time zone; use an IANA name such as Europe/Paris, "
            f"America/New_York or UTC (got '{shown(text)}')"
        ) from None


def local_zone() -> tzinfo:
    """The machine's zone with its rules (not just today's offset): ``TZ``, else the zone
    ``/etc/localtime`` names or holds, else UTC."""
    name = os.environ.get("TZ", "").strip().removeprefix(":")
    if name:
        try:
            return resolve_zone(name, option="TZ")
        except UsageError:
            pass
    localtime = "/etc/localtime"
    try:
        target = os.readlink(localtime)
        marker = "zoneinfo/"
        if marker in target:
            return ZoneInfo(target.split(marker, 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with open(localtime, "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone_name(zone: tzinfo) -> str:
    """How a report names its zone."""
    return getattr(zone, "key", None) or str(zone)


class Segment:
    """A stretch of time with one UTC offset: ``[start, end)`` in epoch seconds."""

    __slots__ = ("end", "offset", "start")

    def __init__(self, start: float, end: float, offset: int) -> None:
        self.start, self.end = start, end
        self.offset = offset  # seconds east of UTC

    def __repr__(self) -> str:
        return f"Segment({self.start}, {self.end}, {self.offset})"


def offset_at(zone: tzinfo, when: float) -> int:
    """The zone's UTC offset at ``when``, in seconds."""
    delta = datetime.fromtimestamp(when, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def offset_segments(zone: tzinfo, start: float, end: float) -> list[Segment]:
    """``[start, end)`` cut where the zone's offset changes (a DST switch).

    Probes every 12 hours (real zones change at most once a day) and finds each
    change to the second by bisection.
    """
    segments: list[Segment] = []
    begin, offset = start, offset_at(zone, start)
    probe = start
    while probe < end:
        following = min(probe + _DAY / 2, end)
        after = offset_at(zone, following) if following < end else offset
        if after != offset:
            low, high = probe, following
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            segments.append(Segment(begin, high, offset))
            begin, offset = high, after
        probe = following
    segments.append(Segment(begin, end, offset))
    return segments


def local_midnight(zone: tzinfo, day: datetime) -> float:
    """Epoch seconds of the local midnight starting ``day``'s date in ``zone``.

    Where midnight does not exist (a zone that skips it), PEP 495's fold=0 rule gives
    the first instant after the gap, which is where that day begins.
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
