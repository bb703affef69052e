"""Which log lines a query wants: a cheap scan of raw bytes, then the exact test.

Filters that can be recognised in the raw bytes (a level, a conversation id, a
search text) are applied to each block with one regular-expression scan, and only
the candidate lines are parsed as JSON: scanning for 100 errors among 100,000 info
lines costs a C-speed regex pass, not 100,000 ``json.loads`` calls. The byte scans
only ever narrow the candidates; which line is shown is decided on the parsed line
alone, so a block's boundaries or a writer's spacing never change the answer.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}

# Lines may arrive slightly out of order (several processes write at once), so the
# --since scan stops only once it is this far past the limit.
_SINCE_SLACK_SECONDS = 5.0
_CANONICAL_LEVELS = b"|".join(name.encode() for name in LEVELS)
# Any "level" key not spelled exactly as our writer spells it (compact, upper case,
# a known level): the literal fast path would miss it, the regex path does not.
_NONCANONICAL_LEVEL = re.compile(rb'"level"(?!:"(?:' + _CANONICAL_LEVELS + rb')")')
# \u escapes of letters, digits and "_-.:" spell keys, levels and plain conversation
# ids in a way no byte pattern sees; JSON encoders never write them, but a line
# that has one is a candidate whatever the pattern says.
_ESCAPED_ASCII = re.compile(rb"\\u00(?:2[dDeE]|3[0-9aA]|[4-7][0-9a-fA-F])")
# The only characters outside ASCII whose str.lower() holds ASCII letters
# (U+0130 -> "i" + U+0307, KELVIN SIGN -> "k"): a case-insensitive ASCII search text
# can match lines holding them that a byte search does not.
_LOWERS_TO_ASCII = {"i": "\u0130".encode(), "k": "\u212a".encode()}
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class LogQuery:
    """What to show: the last ``lines`` entries that pass every filter."""

    lines: int = 100
    min_level: str = "INFO"
    since: datetime | None = None
    grep: str | None = None
    conversation: str | None = None

    def __post_init__(self) -> None:
        if self.lines < 0:
            raise ValueError(f"lines must be 0 or more (got {self.lines})")
        level = self.min_level.upper()
        if level not in LEVEL_RANK:
            raise ValueError(
                f"min_level must be one of {', '.join(LEVELS)} (got {self.min_level!r})"
            )
        object.__setattr__(self, "min_level", level)

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether a parsed entry passes the level and conversation filters."""
        if level_rank(entry.get("level")) < LEVEL_RANK[self.min_level]:
            return False
        return self.conversation is None or entry.get("conversation_id") == self.conversation


def level_rank(value: object) -> int:
    """The rank of a ``level`` field; 0 (TRACE) for anything that is not a level name.

    Case is folded in ASCII only: ``str.upper`` turns "warn\\u0131ng" (a dotless i)
    into "WARNING", a level no byte prefilter could recognise.
    """
    if isinstance(value, str) and value.isascii():
        return LEVEL_RANK.get(value.upper(), 0)
    return 0


@dataclass
class LogEntry:
    """One log line: its raw text (as stored) and its parsed fields."""

    raw: str
    data: dict[str, Any]


class Verdict(enum.Enum):
    """Why a line is not an entry to show."""

    BLANK = "blank"
    REJECTED = "rejected"  # filtered out
    MALFORMED = "malformed"  # not a JSON object: counted as skipped
    TOO_OLD = "too old"  # older than --since by more than the slack: stop reading back


class LineFilter:
    """A query compiled for raw lines: a cheap candidate scan, then the exact test."""

    def __init__(self, query: LogQuery) -> None:
        self.query = query
        self._grep = query.grep.lower() if query.grep else None
        self._since = query.since.timestamp() if query.since is not None else None
        self._pattern: re.Pattern[bytes] | None = None
        self._literals: list[bytes] | None = None
        self._escapes_matter = True  # the level and conversation patterns: see _ESCAPED_ASCII
        self._tricky: re.Pattern[bytes] | None = None  # see _LOWERS_TO_ASCII
        conversation = query.conversation
        if conversation is not None and _PLAIN_ID.fullmatch(conversation):
            # Other ids have several JSON spellings (raw UTF-8, \u escapes, "\/").
            value = re.escape(conversation.encode())
            self._pattern = re.compile(rb'"conversation_id"[ \t\r]*:[ \t\r]*"' + value + b'"')
        elif LEVEL_RANK[query.min_level] >= LEVEL_RANK["WARNING"]:
            wanted = [name.encode() for name in LEVELS[LEVEL_RANK[query.min_level] :]]
            # [ \t\r], not \s: a match must never span two lines.
            self._pattern = re.compile(
                rb'"level"[ \t\r]*:[ \t\r]*"(?:' + b"|".join(wanted) + rb')"', re.IGNORECASE
            )
            self._literals = [b'"level":"' + name + b'"' for name in wanted]
        elif self._grep is not None and self._grep.isascii() and "\n" not in self._grep:
            self._pattern = re.compile(re.escape(self._grep.encode()), re.IGNORECASE)
            self._escapes_matter = False  # the search text is matched against the raw line
            tricky = [raw for letter, raw in _LOWERS_TO_ASCII.items() if letter in self._grep]
            self._tricky = re.compile(b"|".join(tricky)) if tricky else None

    def _doubtful_lines(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Lines of ``chunk`` the pattern could miss (the cheap test first)."""
        if self._tricky is not None:
            return [] if chunk.isascii() else _pattern_lines(chunk, self._tricky)
        if self._escapes_matter and b"\\" in chunk:
            return _pattern_lines(chunk, _ESCAPED_ASCII)
        return []

    def candidates(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """``(offset in chunk, line)`` of the lines that can match, in file order.

        Whether a line is a candidate depends on that line alone, never on what else
        its block holds, so the skipped count does not depend on block boundaries.
        """
        if self._pattern is None:
            return _all_lines(chunk)
        doubtful = self._doubtful_lines(chunk)
        if doubtful:
            return sorted(dict(_pattern_lines(chunk, self._pattern) + doubtful).items())
        if self._literals is not None and not _NONCANONICAL_LEVEL.search(chunk):
            return _literal_lines(chunk, self._literals)
        return _pattern_lines(chunk, self._pattern)

    def candidates_newest_first(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        """``candidates`` in reverse; without a pattern, split off only as far as read."""
        if self._pattern is None:
            return _lines_newest_first(chunk)
        return reversed(self.candidates(chunk))

    def judge(self, line: bytes) -> LogEntry | Verdict:
        """The entry, when ``line`` passes every filter; else why not."""
        if not line.strip():
            return Verdict.BLANK
        text = line.decode("utf-8", errors="replace")
        if self._grep is not None and self._grep not in text.lower():
            return Verdict.REJECTED
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            return Verdict.MALFORMED
        if not isinstance(entry, dict):
            return Verdict.MALFORMED
        if self._since is not None:
            # A line without a time is left out: kept, it would be shown or not
            # depending on whether an older line that stops the scan is a candidate.
            stamp = _timestamp(entry)
            if stamp is None:
                return Verdict.REJECTED
            if stamp < self._since:
                if stamp < self._since - _SINCE_SLACK_SECONDS:
                    return Verdict.TOO_OLD
                return Verdict.REJECTED
        if not self.query.matches(entry):
            return Verdict.REJECTED
        return LogEntry(text, entry)


def _all_lines(chunk: bytes) -> list[tuple[int, bytes]]:
    lines = []
    position = 0
    for line in chunk.split(b"\n"):
        lines.append((position, line))
        position += len(line) + 1
    return lines


def _lines_newest_first(chunk: bytes) -> Iterator[tuple[int, bytes]]:
    end = len(chunk)
    for line in reversed(chunk.split(b"\n")):
        start = end - len(line)
        yield start, line
        end = start - 1


def _literal_lines(chunk: bytes, literals: list[bytes]) -> list[tuple[int, bytes]]:
    """Lines containing any of ``literals``, in file order.

    ``bytes.find`` runs at memchr speed, several times faster than a regex that must
    allow for optional spaces; files written by other tools take the regex path.
    """
    starts: set[int] = set()
    for literal in literals:
        position = chunk.find(literal)
        while position >= 0:
            starts.add(chunk.rfind(b"\n", 0, position) + 1)
            position = chunk.find(literal, position + len(literal))
    lines = []
    for start in sorted(starts):
        end = chunk.find(b"\n", start)
        lines.append((start, chunk[start : len(chunk) if end < 0 else end]))
    return lines


def _pattern_lines(chunk: bytes, pattern: re.Pattern[bytes]) -> list[tuple[int, bytes]]:
    lines: list[tuple[int, bytes]] = []
    last_end = -1
    for match in pattern.finditer(chunk):
        if match.start() < last_end:
            continue  # a second hit on a line already taken
        start = chunk.rfind(b"\n", 0, match.start()) + 1
        end = chunk.find(b"\n", match.end())
        end = len(chunk) if end < 0 else end
        lines.append((start, chunk[start:end]))
        last_end = end
    return lines


def _timestamp(entry: dict[str, Any]) -> float | None:
    value = entry.get("ts")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None
