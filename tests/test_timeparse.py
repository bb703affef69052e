"""Durations, times and metrics windows typed by users: what parses, and the one-line errors."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from assistant_monitoring.errors import UsageError
from assistant_monitoring.metrics.service import resolve_window
from assistant_monitoring.timeparse import MAX_DURATION, parse_duration, parse_since
from tests.conftest import run_assistant
from tests.test_serve import serving

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        (" 2H ", timedelta(hours=2)),
        ("1.5min", timedelta(seconds=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("0.000001s", timedelta(microseconds=1)),
        ("36500d", timedelta(days=36500)),
        # Exact decimal arithmetic: a float would land one microsecond off here.
        ("3153599999.999999s", timedelta(days=36499, seconds=86399, microseconds=999999)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["99999999999999d", "36500.000001d", "5215w", "9" * 90 + "s", "3153600000.000001s"],
)
def test_parse_duration_rejects_what_cannot_be_a_window(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert (
        str(caught.value)
        == f"--period: at most 36500d (got '{text[:40]}{'...' * (len(text) > 40)}')"
    )


def test_max_duration_is_a_hundred_years() -> None:
    assert timedelta(days=36500) == MAX_DURATION


@pytest.mark.parametrize(
    "text",
    [
        "",
        "zzz",
        "nan",
        "inf",
        "nans",
        "infs",
        "1e999s",
        "1e3s",
        "-5m",
        "+5m",
        "5",
        ".5m",
        "5.m",
        "\u0663m",  # ARABIC-INDIC DIGIT THREE: \d matches it, float() reads it
        "\uff13m",  # FULLWIDTH DIGIT THREE
        "3\u017f",  # LATIN SMALL LETTER LONG S: case-insensitively equal to 's'
        "3\u212a",  # KELVIN SIGN, case-insensitively 'k'
        "3m\x00",
        "\x003m",
        "3\u2003m",  # EM SPACE
        "5m 5m",
        "1" * 10_000,
        "9" * 400 + "s",  # too long to be a duration anyone means
    ],
)
def test_parse_duration_rejects_garbage_with_one_line(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, option="ALERT_WINDOW")
    message = str(caught.value)
    assert message.startswith("ALERT_WINDOW: expected a duration such as 30s")
    assert message.isprintable()  # one line: no newline, NUL or other control character
    assert len(message) < 200


@pytest.mark.parametrize("text", ["0m", "0s", "0.0d", "0.0000001s"])
def test_a_zero_duration_is_not_a_window(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"--period: must be longer than 0 (got '{text}')"


def test_parse_since_durations_are_ago_and_zero_is_now() -> None:
    assert parse_since("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_since("0m", now=NOW) == NOW
    local = NOW.astimezone(timezone(timedelta(hours=5)))
    result = parse_since("1h", now=local)
    assert result == NOW - timedelta(hours=1)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00Z", datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        ("2026-11-23T10:00+02:00", datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),
        ("0001-01-01T00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999+00:00", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_parse_since_iso_times(text: str, expected: datetime) -> None:
    result = parse_since(text, now=NOW)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00+01:00",
        "9999-12-31T23:59-01:00",
        "0001-01-01T00:00:00",  # naive: local time, out of range west of Greenwich
    ],
)
def test_parse_since_iso_times_out_of_range(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A POSIX zone five hours west of UTC: needs no zoneinfo files.
    try:
        with monkeypatch.context() as patch:
            patch.setenv("TZ", "XST5")
            time.tzset()
            with pytest.raises(UsageError) as caught:
                parse_since(text, option="--until")
    finally:
        time.tzset()
    assert str(caught.value) == f"--until: time out of range (got '{text}')"


def test_parse_since_durations_that_reach_before_year_one() -> None:
    early = datetime(10, 1, 1, tzinfo=UTC)
    with pytest.raises(UsageError) as caught:
        parse_since("36500d", now=early)
    assert str(caught.value) == "--since: 36500d before now is out of range (got '36500d')"
    with pytest.raises(UsageError, match=r"^--since: at most 36500d \(got '99999999999999d'\)$"):
        parse_since("99999999999999d", now=NOW)


@pytest.mark.parametrize(
    "text", ["٢٠٢٦-01-01", "2026-01-01\x00", "nan", "3m\x00", "yesterday", "2026-13-01", "x" * 5000]
)
def test_parse_since_rejects_garbage_with_one_line(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_since(text, now=NOW)
    message = str(caught.value)
    assert message.startswith("--since: expected a duration such as 30m or 2h, or an ISO time")
    assert message.isprintable()
    assert len(message) < 200


# resolve_window ------------------------------------------------------------------------

TS = NOW.timestamp()


def test_window_from_period_and_until() -> None:
    assert resolve_window(period="1h", since=None, until=None, now=TS) == (
        TS - 3600,
        TS,
        "the last 1h",
    )
    start, end, label = resolve_window(period="1h", since=None, until="2h", now=TS)
    assert (start, end, label) == (TS - 3 * 3600, TS - 2 * 3600, "1h before 2h")


def test_zero_period_names_period_not_since() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_window(period="0m", since=None, until=None, now=TS)
    assert str(caught.value) == "--period: must be longer than 0 (got '0m')"


def test_since_not_before_until() -> None:
    for since, until in (("1h", "2h"), ("1h", "1h"), ("2026-11-23T11:00Z", "2026-11-23T11:00Z")):
        with pytest.raises(UsageError) as caught:
            resolve_window(period="1h", since=since, until=until, now=TS)
        assert str(caught.value) == "--since must be before --until"


def test_since_in_the_future_is_refused() -> None:
    for since in ("2026-11-23T12:00:01Z", "2030-01-01T00:00Z", "0s"):
        with pytest.raises(UsageError) as caught:
            resolve_window(period="1h", since=since, until=None, now=TS)
        assert str(caught.value).startswith(f"--since: must be before now (got '{since}'")


def test_until_in_the_future_ends_the_window_now() -> None:
    start, end, label = resolve_window(period="1h", since="2h", until="2030-01-01T00:00Z", now=TS)
    assert (start, end) == (TS - 7200, TS)
    assert label == "2026-11-23 10:00 to now"
    start, end, label = resolve_window(period="1h", since=None, until="2030-01-01", now=TS)
    assert (start, end, label) == (TS - 3600, TS, "the last 1h")


def test_window_edges_of_the_calendar() -> None:
    start, end, label = resolve_window(
        period="1h", since="0001-01-01T00:00Z", until="0001-01-02T00:00Z", now=TS
    )
    assert end - start == 86400
    assert label == "0001-01-01 00:00 to 0001-01-02 00:00 UTC"
    start, end, _ = resolve_window(period="36500d", since=None, until="0001-01-02T00:00Z", now=TS)
    assert end - start == 36500 * 86400


# The same inputs through the CLI and the HTTP API ---------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "99999999999999d"], "--period: at most 36500d (got '99999999999999d')"),
        (["--period", "0m"], "--period: must be longer than 0 (got '0m')"),
        (["--since", "9999-12-31T23:59-01:00"], "--since: time out of range"),
        (["--period", "\u0663m"], "--period: expected a duration"),
    ],
)
def test_cli_bad_windows_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = run_assistant("monitor", "metrics", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(ASSISTANT_DATA_DIR=str(tmp_path_factory.mktemp("data"))) as (url, _):
        yield url


@pytest.mark.parametrize("path", ["/api/metrics", "/api/timeseries"])
def test_http_api_answers_400_to_a_huge_period(server: str, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server}{path}?period=99999999999999d", timeout=10)
    with caught.value as response:
        assert response.code == 400
        assert "at most 36500d" in json.loads(response.read())["error"]
