"""Reading logs back: newest-first from the end, filters, rotation, bad lines, follow."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assistant_monitoring.logs.follow import follow_logs
from assistant_monitoring.logs.reader import LogQuery, log_files, read_logs, reverse_blocks
from assistant_monitoring.logs.writer import RotatingFileWriter

BASE = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def line(number: int, level: str = "INFO", *, minutes: float = 0, **extra: object) -> bytes:
    ts = (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = {"ts": ts, "level": level, "msg": f"message {number}", "logger": "t", **extra}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


def write(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


def numbers(path: Path, query: LogQuery) -> list[int]:
    return [int(e.data["msg"].split()[1]) for e in read_logs(path, query).entries]


def test_last_lines_newest_last(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [line(n) for n in range(1000)])
    assert numbers(path, LogQuery(lines=5)) == [995, 996, 997, 998, 999]


def test_reverse_blocks_handles_lines_across_block_boundaries(tmp_path: Path) -> None:
    lines = [line(n, msg_padding="x" * (n % 97)) for n in range(500)]
    path = write(tmp_path / "a.jsonl", lines)
    with path.open("rb") as handle:
        chunks = list(reverse_blocks(handle, path.stat().st_size, block=333))
    rebuilt = b"".join(reversed(chunks))
    assert rebuilt == b"".join(lines)
    for chunk in chunks:
        assert chunk.endswith(b"\n")


def test_does_not_read_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "big.jsonl", [line(n) for n in range(200_000)])  # ~18 MB
    read_bytes = 0
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        handle = real_open(self, *args, **kwargs)  # type: ignore[call-overload]
        real_read = handle.read

        def read(size: int = -1) -> bytes:
            nonlocal read_bytes
            data = real_read(size)
            read_bytes += len(data)
            return data

        handle.read = read
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    assert numbers(path, LogQuery(lines=100))[-1] == 199_999
    assert read_bytes < 1024 * 1024, read_bytes


def test_level_filter_and_minimum(tmp_path: Path) -> None:
    levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    path = write(tmp_path / "a.jsonl", [line(n, levels[n % 5]) for n in range(100)])
    assert numbers(path, LogQuery(lines=3, min_level="ERROR")) == [93, 94, 98, 99][-3:]
    assert numbers(path, LogQuery(lines=2, min_level="WARNING")) == [98, 99]
    infos = read_logs(path, LogQuery(lines=1000, min_level="INFO")).entries
    assert all(e.data["level"] != "DEBUG" for e in infos)
    assert len(infos) == 80


def test_rotated_files_are_read_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    write(path.with_name("app.jsonl.2"), [line(n) for n in range(0, 10)])
    write(path.with_name("app.jsonl.1"), [line(n) for n in range(10, 20)])
    write(path, [line(n) for n in range(20, 25)])
    assert log_files(path) == [path, path.with_name("app.jsonl.1"), path.with_name("app.jsonl.2")]
    assert numbers(path, LogQuery(lines=18)) == list(range(7, 25))


def test_grep_conversation_and_since(tmp_path: Path) -> None:
    lines = [
        line(0, minutes=0, conversation_id="a"),
        line(1, minutes=10, conversation_id="b"),
        line(2, "ERROR", minutes=20, conversation_id="a"),
        line(3, minutes=30, conversation_id="b"),
    ]
    path = write(tmp_path / "a.jsonl", lines)
    assert numbers(path, LogQuery(conversation="a")) == [0, 2]
    assert numbers(path, LogQuery(conversation="a", min_level="ERROR")) == [2]
    assert numbers(path, LogQuery(grep="MESSAGE 3")) == [3]
    assert numbers(path, LogQuery(since=BASE + timedelta(minutes=15))) == [2, 3]


def test_malformed_and_partial_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        [line(0), b"not json at all\n", b"[1,2]\n", line(1), b'{"ts":"2026-11-23T12:0'],
    )
    result = read_logs(path, LogQuery())
    assert [e.data["msg"] for e in result.entries] == ["message 0", "message 1"]
    assert result.skipped == 3


def test_follow_keeps_going_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    writer = RotatingFileWriter(path, max_bytes=2000, max_files=50)
    writer.write(line(-1))
    seen: list[int] = []
    stop = threading.Event()

    def consume() -> None:
        for entry in follow_logs(path, LogQuery(), poll_seconds=0.01, should_stop=stop.is_set):
            seen.append(int(entry.data["msg"].split()[1]))

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.2)  # the follower starts at the end of the file
    for n in range(300):  # ~25 rotations
        writer.write(line(n))
        if n % 50 == 0:
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while len(seen) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    consumer.join(timeout=5)
    writer.close()
    assert seen == list(range(300))
