"""Property-based tests of what users type: .env files, durations and times.

Whatever the input, the parsers either return a value or raise the error the CLI turns
into one line and exit code 2 (ProfileError, UsageError); never anything else.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant_monitoring.errors import ProfileError, UsageError
from assistant_monitoring.settings.envfile import parse_env_text, read_env_file
from assistant_monitoring.timeparse import MAX_DURATION, parse_duration, parse_since

# database=None: the examples database would be written into the working tree.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Text that looks like .env content, so generated lines reach past the first check.
ENV_PIECES = st.sampled_from(
    [*"AZaz_09=#'\"\\ $\t\r\n", "export ", "\ufeff", "\x00", "\u2028", "\x85", "é", "sk-ant-"]
)
env_like_text = st.lists(ENV_PIECES, max_size=60).map("".join) | st.text(max_size=80)

KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
# Any value a process environment can hold: no NUL, no lone surrogates (not UTF-8).
VALUES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


def assert_one_line(message: str, prefix: str) -> None:
    """What the CLI prints must be the single, short line of an error for ``prefix``."""
    assert message.startswith(prefix), message
    assert message.isprintable(), message  # no newline, NUL or other control character
    assert len(message) < 200, message


def quote(value: str) -> str:
    """``value`` as a double-quoted .env value that the parser reads back unchanged."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def serialize(values: dict[str, str], *, newline: str = "\n") -> str:
    return "".join(f"{key}={quote(value)}{newline}" for key, value in values.items())


# .env parser ---------------------------------------------------------------------------


@PROPERTY
@given(env_like_text)
@example("\ufeffKEY=1")
@example('A="x\u2028y"')
def test_any_text_parses_or_raises_profile_error(text: str) -> None:
    try:
        values = parse_env_text(text, source="f")
    except ProfileError as error:
        assert_one_line(str(error), "f:")
    else:
        for key, value in values.items():
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
            assert "\x00" not in value


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-16")))
def test_any_file_parses_or_raises_profile_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ".env"
        path.write_bytes(data)
        try:
            read_env_file(path)
        except ProfileError as error:
            message = str(error)
        else:
            return
        assert_one_line(message, f"{path}:")


@PROPERTY
@given(st.dictionaries(KEYS, VALUES, max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_quoted_values_round_trip(values: dict[str, str], newline: str, bom: bool) -> None:
    text = ("\ufeff" if bom else "") + serialize(values, newline=newline)
    assert parse_env_text(text) == values
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ".env"
        path.write_bytes(text.encode("utf-8"))
        assert read_env_file(path) == values


@PROPERTY
@given(
    st.dictionaries(KEYS, VALUES, min_size=1, max_size=6),
    st.lists(st.sampled_from(["", "# a comment", "   ", "\t# indented"]), max_size=6),
    st.booleans(),
    st.data(),
)
def test_comments_blank_lines_and_export_change_nothing(
    values: dict[str, str], filler: list[str], export: bool, data: st.DataObject
) -> None:
    lines = [
        f"{'export ' if export else ''}{key}={quote(value)} # note" for key, value in values.items()
    ]
    for extra in filler:
        lines.insert(data.draw(st.integers(0, len(lines)), label="at"), extra)
    assert parse_env_text("\n".join(lines)) == values


@PROPERTY
@given(KEYS, st.lists(VALUES, min_size=2, max_size=4))
def test_the_last_duplicate_wins(key: str, values: list[str]) -> None:
    text = serialize({"FIRST": "1"}) + "".join(f"{key}={quote(value)}\n" for value in values)
    parsed = parse_env_text(text)
    assert parsed[key] == values[-1]


@PROPERTY
@given(st.from_regex(r"[A-Za-z0-9_.:/@+-]{1,30}", fullmatch=True))
def test_plain_unquoted_values_are_kept(value: str) -> None:
    assert parse_env_text(f"KEY={value}  # why\r\n") == {"KEY": value}


# Durations and times -------------------------------------------------------------------

duration_like = st.from_regex(
    r"\s*[0-9\u0663\uff13.eE+-]{0,12}\s*(s|sec|m|min|h|d|w|S|M|\u017f|nan|inf)?\s*",
    fullmatch=True,
)
iso_like = st.datetimes(timezones=st.none() | st.timezones()).map(str) | st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?",
    fullmatch=True,
)
any_time_text = st.text(max_size=40) | duration_like | iso_like
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@PROPERTY
@given(any_time_text)
@example("99999999999999d")
@example("1e999s")
@example("\u0663m")
@example("3\u017f")
def test_any_text_is_a_duration_or_a_usage_error(text: str) -> None:
    try:
        delta = parse_duration(text, option="--period")
    except UsageError as error:
        assert_one_line(str(error), "--period: ")
    else:
        assert timedelta(0) < delta <= MAX_DURATION


@PROPERTY
@given(any_time_text, st.datetimes(timezones=st.just(UTC)) | st.just(NOW))
@example("36500d", datetime(1, 1, 1, tzinfo=UTC))
@example("0001-01-01T00:00+01:00", NOW)
@example("9999-12-31T23:59-01:00", NOW)
def test_any_text_is_a_time_or_a_usage_error(text: str, now: datetime) -> None:
    try:
        moment = parse_since(text, now=now, option="--until")
    except UsageError as error:
        assert_one_line(str(error), "--until: ")
    else:
        assert moment.tzinfo is UTC
        assert moment.utcoffset() == timedelta(0)


@PROPERTY
@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=MAX_DURATION))
def test_seconds_round_trip(delta: timedelta) -> None:
    whole, micro = divmod(delta // timedelta(microseconds=1), 1_000_000)
    assert parse_duration(f"{whole}.{micro:06d}s") == delta
    # The form people write, via the float total_seconds(), lands on the same microsecond.
    assert parse_duration(f"{delta.total_seconds():.6f}s") == delta


@PROPERTY
@given(
    st.timedeltas(min_value=timedelta(0), max_value=MAX_DURATION),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]),
)
def test_since_a_duration_is_now_minus_it(delta: timedelta, now: datetime, zone: timezone) -> None:
    whole, micro = divmod(delta // timedelta(microseconds=1), 1_000_000)
    aware = now.replace(tzinfo=zone)
    moment = parse_since(f"{whole}.{micro:06d}s", now=aware)
    assert moment == aware - delta
    assert moment.tzinfo is UTC


@PROPERTY
@given(st.datetimes(timezones=st.timezones()))
def test_iso_times_round_trip(moment: datetime) -> None:
    try:
        expected = moment.astimezone(UTC)
    except OverflowError:
        return  # not representable in UTC: parse_since must say so, tested above
    assert parse_since(moment.isoformat(), now=NOW) == expected
