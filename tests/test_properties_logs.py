"""Properties of the log reader: any bytes are survived, and the fast paths are exact.

The reader walks files backwards in blocks, picks candidate lines with byte
patterns and, past a memory budget, reads the wanted lines a second time forwards.
Against arbitrary files it must only ever succeed or raise the toolkit's own error;
on logs whose timestamps run forwards it must return exactly what the obvious
program returns: parse every line oldest first, filter, keep the last n.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant_monitoring.errors import MonitoringError
from assistant_monitoring.logs.filters import _LOWERS_TO_ASCII, LEVELS
from assistant_monitoring.logs.reader import MEMORY_BUDGET, LogQuery, read_logs

# The autouse profile fixture is function-scoped; nothing here depends on it.
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONVERSATIONS = ["c-1.x", "caf\u00e9", "a/b", 'q"x', "\u212a", ""]
LEVEL_VALUES = st.one_of(
    st.sampled_from(LEVELS),
    st.sampled_from(LEVELS[4:]),
    st.sampled_from(LEVELS[4:]).map(str.lower),
    st.sampled_from(LEVELS).map(str.lower),
    st.sampled_from(LEVELS).map(str.title),
    st.sampled_from(["FATAL", "", " ERROR", "warn\u0131ng", "\u0131nfo", "ERROR\u0000"]),
    st.none(),
    st.integers(-3, 60),
    st.booleans(),
    st.lists(st.sampled_from(LEVELS), max_size=2),
)
# Values of "ts" that never parse as a time: they must not stop a --since scan.
JUNK_TIMES = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(alphabet="abcxyz -:", max_size=8),
    st.lists(st.integers(), max_size=2),
)
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from('kKiI\u212a\u0130\u00e9\u00c9\u03a3\r\t"\\/{}:'),
    ),
    max_size=12,
)


def spell_time(instant: datetime, style: int) -> str:
    """One instant in the spellings loguru, Python and other tools write."""
    if style == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if style == 1:
        return instant.isoformat()
    if style == 2:
        return instant.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return instant.replace(tzinfo=None).isoformat(sep=" ")  # naive: read as UTC


def escape_ascii(text: str, seed: int) -> str:
    """JSON text with some letters spelled as \\u escapes, which JSON allows.

    A seeded generator picks them: one draw per character would use up the data
    Hypothesis allows an example.
    """
    chooser = random.Random(seed)
    out = []
    inside = False
    for char in text:
        if char == '"' and (not out or out[-1] != "\\"):
            inside = not inside
        if inside and char.isalnum() and char.isascii() and chooser.random() < 0.3:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


@st.composite
def well_formed_line(draw: st.DrawFn, instant: datetime) -> bytes:
    """A JSON object line: our writer's shape, other tools' spellings, odd values."""
    record: dict[str, Any] = {}
    if draw(st.sampled_from([True, True, True, False])):
        record["ts"] = draw(
            st.one_of(st.integers(0, 3).map(lambda style: spell_time(instant, style)), JUNK_TIMES)
        )
    if draw(st.sampled_from([True, True, True, False])):
        record["level"] = draw(LEVEL_VALUES)
    record["msg"] = draw(st.one_of(TEXT, st.sampled_from(["\u212a", "x\u0130y", "caf\u00e9"])))
    if draw(st.booleans()):
        record["conversation_id"] = draw(st.one_of(st.sampled_from(CONVERSATIONS), st.integers()))
    if draw(st.booleans()):
        record["extra"] = draw(st.one_of(TEXT, st.dictionaries(TEXT, TEXT, max_size=2)))
    keys = list(record)
    order = draw(st.permutations(keys))
    record = {key: record[key] for key in order}
    text = json.dumps(
        record,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : "), (",\t", ":\t")])),
    )
    if draw(st.integers(0, 2)) == 0:
        text = escape_ascii(text, draw(st.integers(0, 2**32)))
    return text.encode()


@st.composite
def broken_line(draw: st.DrawFn, instant: datetime) -> bytes:
    """A JSON line cut in two where it has spaces or a colon: two malformed lines."""
    text = draw(well_formed_line(instant))
    cuts = [i for i, byte in enumerate(text) if byte in b" :\t"] or [len(text) // 2]
    cut = draw(st.sampled_from(cuts)) + draw(st.integers(0, 1))
    return text[:cut] + b"\n" + text[cut:]


GARBAGE_LINE = st.one_of(
    st.binary(max_size=40).map(lambda data: data.replace(b"\n", b"")),
    st.sampled_from(
        [
            b"[1,2]",
            b'"just a string"',
            b"42",
            b"null",
            b'{"ts":"2026-11-23T12:0',
            b'{"level":',
            b'"ERROR"}',
            b"\xff\xfe{}",
            b'{"level":"ERROR","msg":"\xc3"}',
            b"[" * 5000,
            b"{}",
            b"\xef\xbb\xbf{}",
        ]
    ),
    st.integers(1, 3000).map(lambda size: b'{"msg":"' + b"x" * size + b'"}'),
)


@st.composite
def log_files(draw: st.DrawFn, *, well_formed: bool) -> list[bytes]:
    """The contents of the live file and its rotated siblings, oldest first."""
    count = draw(st.integers(1, 3))
    instant = BASE
    files: list[bytes] = []
    for _ in range(count):
        lines: list[bytes] = []
        for _ in range(draw(st.integers(0, 8))):
            # Timestamps run forwards (a --since scan stops at the first old one).
            instant += timedelta(seconds=draw(st.integers(0, 40)))
            good = well_formed_line(instant)
            if well_formed:
                kinds = st.one_of(good, good, good, GARBAGE_LINE, broken_line(instant))
            else:
                kinds = st.one_of(GARBAGE_LINE, good, broken_line(instant), st.binary())
            lines.append(draw(kinds))
        ending = draw(st.sampled_from([b"\n", b"\r\n"]))
        data = ending.join(lines)
        if lines and draw(st.booleans()):
            data += ending  # else the last line has no newline (being written)
        files.append(data)
    return files


def search_texts(files: list[bytes]) -> st.SearchStrategy[str]:
    text = b"\n".join(files).decode("utf-8", "replace")
    return st.one_of(
        TEXT.filter(bool),
        st.sampled_from(["k", "I", "ik", "\u00e9", "message", "ERROR", '"', "\r", "xx"]),
        st.integers(0, max(len(text) - 1, 0)).flatmap(
            lambda start: st.integers(1, 6).map(lambda size: text[start : start + size])
        ),
    )


SINCE = st.integers(-30, 600).map(lambda seconds: BASE + timedelta(seconds=seconds))
# Each filter alone is where its byte prefilter decides, so each gets its share.
FOCUS = st.sampled_from(["level", "conversation", "grep", "since", "all"])


def conversations(files: list[bytes]) -> st.SearchStrategy[str]:
    """An id the files hold, mostly: a filter that keeps nothing proves little."""
    present = set()
    for data in files:
        for raw in data.split(b"\n"):
            try:
                value = json.loads(raw).get("conversation_id")
            except (ValueError, RecursionError, AttributeError):
                continue
            if isinstance(value, str):
                present.add(value)
    ids = st.sampled_from(CONVERSATIONS)
    return st.one_of(st.sampled_from(sorted(present)), ids) if present else ids


@st.composite
def queries(draw: st.DrawFn, files: list[bytes], focus: str) -> LogQuery:
    lines = draw(st.one_of(st.integers(0, 5), st.integers(0, 200)))
    low_levels = st.sampled_from(["TRACE", *LEVELS])  # TRACE twice: unfiltered levels
    if focus == "level":
        return LogQuery(lines=lines, min_level=draw(st.sampled_from(LEVELS[2:])))
    if focus == "conversation":
        conversation = draw(conversations(files))
        return LogQuery(lines=lines, min_level=draw(low_levels), conversation=conversation)
    if focus == "grep":
        level = draw(st.sampled_from(["TRACE", *LEVELS[:4]]))  # below WARNING: grep prefilters
        return LogQuery(lines=lines, min_level=level, grep=draw(search_texts(files)))
    if focus == "since":
        return LogQuery(lines=lines, min_level=draw(st.sampled_from(LEVELS)), since=draw(SINCE))
    return LogQuery(
        lines=lines,
        min_level=draw(st.sampled_from(LEVELS)),
        since=draw(st.one_of(st.none(), SINCE)),
        grep=draw(st.one_of(st.none(), search_texts(files))),
        conversation=draw(st.one_of(st.none(), conversations(files))),
    )


def reference(files: list[bytes], query: LogQuery) -> list[str]:
    """The obvious program: every line of every file, oldest first, filtered."""
    kept: list[str] = []
    for data in files:
        for raw in data.split(b"\n"):
            text = raw.decode("utf-8", "replace")
            try:
                entry = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if not isinstance(entry, dict):
                continue
            level = entry.get("level")
            known = isinstance(level, str) and level.isascii() and level.upper() in LEVELS
            rank = LEVELS.index(level.upper()) if known else 0  # type: ignore[union-attr]
            if rank < LEVELS.index(query.min_level):
                continue
            if (
                query.conversation is not None
                and entry.get("conversation_id") != query.conversation
            ):
                continue
            if query.grep and query.grep.lower() not in text.lower():
                continue
            if query.since is not None and _older(entry.get("ts"), query.since):
                continue
            kept.append(text)
    return kept[max(len(kept) - query.lines, 0) :] if query.lines else []


def _older(value: object, since: datetime) -> bool:
    """Whether ``value`` is a time before ``since``; a line without one counts as older."""
    if not isinstance(value, str):
        return True
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return True
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp < since


def with_files(files: list[bytes], check: Callable[[Path], None]) -> None:
    """Write ``files`` (oldest first) as app.jsonl.N ... app.jsonl, then ``check``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.jsonl"
        for age, data in enumerate(reversed(files)):
            (path.with_name(f"app.jsonl.{age}") if age else path).write_bytes(data)
        check(path)


BUDGETS = st.sampled_from([0, 1, 300, MEMORY_BUDGET])
BLOCKS = st.sampled_from([1, 7, 64, 300, 256 * 1024])


@SETTINGS
@given(data=st.data(), budget=BUDGETS, block=BLOCKS, focus=FOCUS)
def test_any_bytes_are_read_or_refused_with_our_error(
    data: st.DataObject, budget: int, block: int, focus: str
) -> None:
    files = data.draw(log_files(well_formed=False))
    query = data.draw(queries(files, focus))

    def check(path: Path) -> None:
        try:
            memory = read_logs(path, query)
            streamed = read_logs(path, query, memory_budget=budget, block_size=block)
        except MonitoringError:
            return
        assert len(memory.entries) <= query.lines
        assert [e.raw for e in streamed.entries] == [e.raw for e in memory.entries]
        assert [e.data for e in streamed.entries] == [e.data for e in memory.entries]
        assert streamed.skipped == memory.skipped
        assert streamed.files == memory.files
        for entry in memory.entries:
            assert "\n" not in entry.raw
            assert isinstance(entry.data, dict)

    with_files(files, check)


@SETTINGS
@given(data=st.data(), budget=BUDGETS, block=BLOCKS, focus=FOCUS)
def test_results_agree_with_the_obvious_program(
    data: st.DataObject, budget: int, block: int, focus: str
) -> None:
    files = data.draw(log_files(well_formed=True))
    query = data.draw(queries(files, focus))
    expected = reference(files, query)

    def check(path: Path) -> None:
        for kwargs in ({}, {"memory_budget": budget, "block_size": block}):
            result = read_logs(path, query, **kwargs)  # type: ignore[arg-type]
            assert [entry.raw for entry in result.entries] == expected, kwargs

    with_files(files, check)


def single_line_queries(line: bytes) -> list[LogQuery]:
    """Every level, id and tricky search text against one line: each byte scan's case."""
    text = line.decode("utf-8", "replace")
    texts = ["k", "K", "i", "I", "\u00e9", "\u00c9", '"', "\\", "\r", text[3:6], text[-4:-1]]
    ids = [*CONVERSATIONS, "c1"]
    with contextlib.suppress(ValueError, AttributeError):  # not a JSON object
        ids.append(json.loads(text).get("conversation_id"))
    return [
        *(LogQuery(lines=3, min_level=level) for level in LEVELS),
        *(LogQuery(lines=3, min_level="TRACE", conversation=c) for c in ids if isinstance(c, str)),
        *(LogQuery(lines=3, min_level="TRACE", grep=grep) for grep in texts if grep),
        LogQuery(lines=3, min_level="TRACE", since=BASE + timedelta(seconds=30)),
        LogQuery(lines=3, min_level="TRACE", since=BASE + timedelta(seconds=90)),
    ]


@settings(SETTINGS, max_examples=300)
@given(context=st.one_of(st.just(b""), GARBAGE_LINE), data=st.data())
def test_each_line_is_judged_as_the_obvious_program_does(
    context: bytes, data: st.DataObject
) -> None:
    # One line at a time, beside lines that change which byte scan its block gets
    # (another tool's spacing, an escape, garbage), against many queries: many
    # spellings a second.
    line = data.draw(well_formed_line(BASE + timedelta(seconds=60)))
    spacing = data.draw(
        st.sampled_from([b"", b'{"level": "INFO"}', b'{"level" :"x"}', b'"\\u0041"'])
    )
    files = [b"\n".join([context, spacing, line, b""])]

    def check(path: Path) -> None:
        for query in single_line_queries(line):
            expected = reference(files, query)
            for block in (1, 256 * 1024):
                result = read_logs(path, query, block_size=block)
                assert [entry.raw for entry in result.entries] == expected, (query, block)

    with_files(files, check)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda line: line.replace(b"\n", b"")), max_size=30),
    block=st.integers(1, 50),
    ending=st.booleans(),
)
def test_blocks_backwards_rebuild_the_file(lines: list[bytes], block: int, ending: bool) -> None:
    from assistant_monitoring.logs.reader import reverse_blocks

    data = b"\n".join(lines) + (b"\n" if ending and lines else b"")
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        chunks = list(reverse_blocks(handle, len(data), block=block))
    assert b"".join(reversed(chunks)) == data
    assert all(chunk.endswith(b"\n") for chunk in chunks[1:])


def test_lowers_to_ascii_table_is_complete() -> None:
    # The grep prefilter relies on these being the only such characters.
    found = {}
    for code in range(0x80, sys.maxunicode + 1):
        lowered = chr(code).lower()
        for letter in lowered:
            if letter.isascii():
                found[letter] = chr(code).encode("utf-8", "surrogatepass")
    assert found == _LOWERS_TO_ASCII
