"""Parse the times and durations users type: ``30m``, ``2h``, ``7d``, ISO-8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from assistant_monitoring.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, option: str = "--period") -> timedelta:
    """``'30m'`` -> 30 minutes. Raises UsageError naming ``option`` on bad input."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{option}: expected a duration such as 30s, 15m, 2h or 7d (got '{text}')")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit.lower()])


def parse_since(text: str, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """A duration ago (``30m``) or an ISO time (naive means local time), as aware UTC."""
    current = now or datetime.now(UTC)
    if _DURATION.match(text):
        return current - parse_duration(text, option=option)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: expected a duration such as 30m or 2h, or an ISO time such as "
            f"2026-11-23T10:00 (got '{text}')"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(UTC)
