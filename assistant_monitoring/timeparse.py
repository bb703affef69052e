"""Parse the times and durations users type: ``30m``, ``2h``, ``7d``, ISO-8601.

Every bad input, however odd (huge numbers, non-ASCII digits, control characters,
dates past year 9999), ends in a one-line :class:`UsageError` naming the option.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from assistant_monitoring.errors import UsageError, shown

# A hundred years: longer than any retention, far below timedelta's limit (999999999
# days), and small enough that "now minus it" stays within datetime's range.
MAX_DURATION = timedelta(days=36500)

# re.ASCII: without it \d matches '٣' (which Fraction and float happily read), and
# IGNORECASE matches U+017F (long s) to 's', a unit the lookup table does not know.
_DURATION = re.compile(
    r"\s*([0-9]+(?:\.[0-9]+)?)[ \t]*(s|sec|m|min|h|d|w)\s*", re.IGNORECASE | re.ASCII
)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# A valid duration or ISO time is short; longer input is refused before any parsing
# (int() refuses strings of over 4300 digits anyway).
_MAX_TEXT = 100


def parse_duration(text: str, *, option: str = "--period") -> timedelta:
    """``'30m'`` -> 30 minutes: a number (``1.5`` allowed) and a unit s, m, h, d or w.

    Every caller uses the result as the length of a window, so zero (or anything that
    rounds to less than a microsecond) is refused, as is more than :data:`MAX_DURATION`.
    Raises :class:`UsageError` naming ``option`` on bad input.
    """
    delta = _duration(text, option)
    if delta is None:
        raise UsageError(
            f"{option}: expected a duration such as 30s, 15m, 2h or 7d (got '{shown(text)}')"
        )
    if not delta:
        raise UsageError(f"{option}: must be longer than 0 (got '{shown(text)}')")
    return delta


def parse_since(text: str, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """A duration ago (``30m``) or an ISO time (naive means local time), as aware UTC.

    ``0m`` means ``now``. A trailing ``Z`` means UTC. Raises :class:`UsageError`
    naming ``option`` for bad input and for a time outside years 1 to 9999.
    """
    current = now if now is not None else datetime.now(UTC)
    delta = _duration(text, option)
    if delta is not None:
        try:
            return (current - delta).astimezone(UTC)
        except (OverflowError, ValueError):  # ValueError: a naive ``now`` near year 1
            raise UsageError(
                f"{option}: {shown(text.strip())} before now is out of range (got '{shown(text)}')"
            ) from None
    iso = text.strip()
    # fromisoformat only reads ASCII digits today; checking here keeps it that way.
    if len(iso) > _MAX_TEXT or not iso.isascii() or not iso.isprintable():
        moment = None
    else:
        try:
            moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if moment is None:
        raise UsageError(
            f"{option}: expected a duration such as 30m or 2h, or an ISO time such as "
            f"2026-11-23T10:00 (got '{shown(text)}')"
        )
    try:
        # A naive time is the user's local time; near year 1 or 9999 either conversion
        # can leave datetime's range (ValueError or OverflowError depending on where).
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise UsageError(f"{option}: time out of range (got '{shown(text)}')") from None


def duration_or_none(text: str, option: str) -> timedelta | None:
    """The duration ``text`` spells (zero allowed), None when it is no duration at all;
    UsageError naming ``option`` past :data:`MAX_DURATION`."""
    return _duration(text, option)


def _duration(text: str, option: str) -> timedelta | None:
    """The duration ``text`` spells (zero allowed), None when it is not one at all."""
    match = _DURATION.fullmatch(text) if len(text) <= _MAX_TEXT else None
    if match is None:
        return None
    number, unit = match.groups()
    # Fraction, not float: exact, so "<seconds>s" round-trips to the microsecond and
    # no number of digits can overflow before the bound is checked.
    seconds = Fraction(number) * _UNIT_SECONDS[unit.lower()]
    if seconds > MAX_DURATION.days * 86400:
        raise UsageError(f"{option}: at most {MAX_DURATION.days}d (got '{shown(text)}')")
    return timedelta(microseconds=round(seconds * 1_000_000))
