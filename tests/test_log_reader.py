"""Reading logs back: newest-first from the end, filters, rotation, bad lines, follow."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assistant.cli import main
from assistant_monitoring.logs.follow import follow_logs
from assistant_monitoring.logs.reader import LogQuery, log_files, read_logs, reverse_blocks
from assistant_monitoring.logs.writer import RotatingFileWriter
from tests.conftest import installed_assistant, run_main, subprocess_env

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


def assert_one_line(err: str, expected: str) -> None:
    assert err.strip().splitlines() == [f"error: {expected}"], err
    assert "Traceback" not in err


def test_file_option_naming_a_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for extra in ((), ("-n", "0"), ("--follow",)):
        code, out, err = run_main(capsys, "monitor", "logs", "--file", str(folder), *extra)
        assert (code, out) == (2, "")
        assert_one_line(err, f"--file: {folder} is a directory, not a log file")


def test_file_option_that_cannot_be_read_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "secret.jsonl", [line(0)])
    real_open = os.open

    def denying_open(name: object, flags: int, *args: int, **kwargs: object) -> int:
        if Path(str(name)) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, flags, *args, **kwargs)  # type: ignore[arg-type]

    # The tests run as root on CI, where chmod 000 does not stop a read: the
    # permission error the kernel would give is simulated instead.
    monkeypatch.setattr(os, "open", denying_open)
    code, out, err = run_main(capsys, "monitor", "logs", "--file", str(path))
    assert (code, out) == (2, "")
    assert_one_line(err, f"--file: {path} is not readable (permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_file_option_without_read_permission_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "secret.jsonl", [line(0)])
    path.chmod(0)
    code, _, err = run_main(capsys, "monitor", "logs", "--file", str(path))
    assert code == 2
    assert_one_line(err, f"--file: {path} is not readable (permission denied)")


@pytest.mark.timeout(20)
def test_file_option_naming_a_fifo_is_refused_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_main(capsys, "monitor", "logs", "--file", str(fifo))
    assert code == 2
    assert_one_line(
        err, f"--file: {fifo} is not a regular file (pipes and devices cannot be read back)"
    )


def test_log_file_in_the_log_dir_that_is_a_directory_exits_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "logs" / "assistant.jsonl").mkdir(parents=True)
    code, out, err = run_main(capsys, "monitor", "logs")
    assert (code, out) == (1, "")
    assert_one_line(err, f"{data_dir / 'logs' / 'assistant.jsonl'} is a directory, not a log file")


def test_zero_lines_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.jsonl", [line(n) for n in range(5)])
    assert read_logs(path, LogQuery(lines=0)).entries == []
    assert read_logs(path, LogQuery(lines=0), memory_budget=0).entries == []
    with pytest.raises(SystemExit) as exit_info:
        main(["monitor", "logs", "--file", str(path), "-n", "0", "--json"])
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out == ""


def test_follow_resumes_where_the_read_ended(tmp_path: Path) -> None:
    from assistant_monitoring.logs.reader import open_logs

    path = write(tmp_path / "app.jsonl", [line(n) for n in range(3)])
    with open_logs(path, LogQuery(lines=0)) as stream:
        assert list(stream) == []
    # Written after the read, before following starts, then rotated away: like
    # `tail -n 0 -f`, these lines are new and must be shown, once.
    with path.open("ab") as handle:
        handle.write(line(3))
    path.rename(path.with_name("app.jsonl.1"))
    write(path, [line(4)])
    seen: list[int] = []
    for entry in follow_logs(
        path, LogQuery(), start=stream.end, poll_seconds=0, should_stop=lambda: len(seen) >= 2
    ):
        seen.append(int(entry.data["msg"].split()[1]))
    assert seen == [3, 4]


def holds_open(pid: int, path: Path) -> bool:
    folder = Path(f"/proc/{pid}/fd")
    for fd in folder.iterdir():
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def wait_until_following(child: subprocess.Popen[bytes], path: Path) -> None:
    """Until the child keeps ``path`` open (the read before following opens it briefly)."""
    deadline = time.monotonic() + 20
    while True:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        if holds_open(child.pid, path):
            time.sleep(0.2)
            if holds_open(child.pid, path):
                return
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_zero_lines_with_follow_prints_only_new_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "app.jsonl", [line(n) for n in range(3)])
    child = subprocess.Popen(
        [installed_assistant(), "monitor", "logs", "-n", "0", "-f", "--json", "--file", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    try:
        assert child.stdout is not None
        wait_until_following(child, path)
        with path.open("ab") as handle:
            handle.write(line(100))
        ready, _, _ = select.select([child.stdout], [], [], 20)
        assert ready, "nothing printed"
        first = child.stdout.readline()
    finally:
        child.terminate()
        child.communicate(timeout=10)
    assert json.loads(first)["msg"] == "message 100"


def test_output_to_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [line(n) for n in range(50_000)])
    child = subprocess.Popen(
        [installed_assistant(), "monitor", "logs", "--file", str(path), "-n", "50000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    assert child.stdout is not None
    assert child.stderr is not None
    assert child.stdout.readline()
    child.stdout.close()  # like `| head -1`
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=30) == 1
    assert err == b""


def test_two_pass_reads_the_files_as_they_were(tmp_path: Path) -> None:
    from assistant_monitoring.logs.reader import open_logs

    path = tmp_path / "app.jsonl"
    write(path.with_name("app.jsonl.1"), [line(n) for n in range(0, 40)])
    write(path, [line(n) for n in range(40, 60)])
    query = LogQuery(lines=30)
    expected = [e.raw for e in read_logs(path, query).entries]
    assert len(expected) == 30
    with open_logs(path, query, memory_budget=0) as stream:
        # Between the two passes: lines appended to the live file, then a rotation.
        with path.open("ab") as handle:
            handle.write(b"".join(line(n) for n in range(60, 70)))
        path.with_name("app.jsonl.1").rename(path.with_name("app.jsonl.2"))
        path.rename(path.with_name("app.jsonl.1"))
        write(path, [line(n) for n in range(70, 80)])
        assert [e.raw for e in stream] == expected


def test_two_pass_agrees_with_memory_across_filters_and_blocks(tmp_path: Path) -> None:
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    path = tmp_path / "app.jsonl"
    for index in (2, 1, 0):
        lines = [
            line(n, levels[n % 4], minutes=n, conversation_id=f"c{n % 3}", pad="x" * (n % 50))
            for n in range(index * 100, index * 100 + 100)
        ][::-1]
        write(path.with_name(path.name + (f".{2 - index}" if index != 2 else "")), lines[::-1])
    queries = [
        LogQuery(lines=1000, min_level="TRACE"),
        LogQuery(lines=57),
        LogQuery(lines=20, min_level="ERROR"),
        LogQuery(lines=500, conversation="c1"),
        LogQuery(lines=500, grep="message 1"),
        LogQuery(lines=500, since=BASE + timedelta(minutes=150)),
    ]
    for query in queries:
        memory = read_logs(path, query)
        for block in (64, 333, 4096):
            streamed = read_logs(path, query, memory_budget=0, block_size=block)
            assert [e.raw for e in streamed.entries] == [e.raw for e in memory.entries], query
            assert streamed.skipped == memory.skipped
        assert memory.entries, query


def test_same_file_under_two_names_is_read_once(tmp_path: Path) -> None:
    # A rotation that renames the live file while the files are listed makes one
    # file appear under two names; a hard link stands in for that moment.
    path = write(tmp_path / "app.jsonl", [line(n) for n in range(5)])
    os.link(path, path.with_name("app.jsonl.1"))
    assert numbers(path, LogQuery(lines=100)) == [0, 1, 2, 3, 4]


def test_level_filter_sees_levels_in_any_spelling(tmp_path: Path) -> None:
    lines = [
        b'{"level": "INFO", "msg": "structlog style"}\n',
        b'{"level": "error", "msg": "lower case"}\n',
        b'{"level":\t"ERROR", "msg": "tab"}\n',
        b'{"level":"Critical","msg":"mixed case"}\n',
        b'{"\\u006cevel":"ERROR","msg":"escaped key"}\n',
        b'{"level":"INFO","msg":"compact"}\n',
        b'{"level":"ERROR ","msg":"not a level"}\n',
    ]
    path = write(tmp_path / "a.jsonl", lines)
    errors = [e.data["msg"] for e in read_logs(path, LogQuery(min_level="ERROR")).entries]
    assert errors == ["lower case", "tab", "mixed case", "escaped key"]


def test_a_match_never_joins_two_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [b'{"level": "INFO"}\n', b'{"level":\n', b'"ERROR"}\n'])
    result = read_logs(path, LogQuery(min_level="ERROR"))
    assert result.entries == []


def test_levels_are_compared_in_ascii_only(tmp_path: Path) -> None:
    # "warn\u0131ng".upper() == "WARNING": such a line must not be a warning at one
    # --level and not at another.
    path = write(tmp_path / "a.jsonl", [b'{"level":"warn\xc4\xb1ng","msg":"dotless"}\n'])
    assert read_logs(path, LogQuery(min_level="WARNING")).entries == []
    assert read_logs(path, LogQuery(min_level="INFO")).entries == []
    assert len(read_logs(path, LogQuery(min_level="TRACE")).entries) == 1


def test_conversation_and_grep_outside_ascii(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        [
            line(0, conversation_id="caf\u00e9"),  # written as UTF-8, as our writer does
            line(1, note="\u00c9CHEC"),
            line(2, note="\u212a"),  # KELVIN SIGN: lower() is "k"
        ],
    )
    raw = path.read_bytes().replace(b"\\u00e9", "\u00e9".encode())
    raw = raw.replace(b"\\u00c9", "\u00c9".encode()).replace(b"\\u212a", "\u212a".encode())
    path.write_bytes(raw)
    assert numbers(path, LogQuery(conversation="caf\u00e9")) == [0]
    assert numbers(path, LogQuery(grep="\u00e9chec")) == [1]
    assert numbers(path, LogQuery(grep='"k"')) == [2]


def test_deeply_nested_line_is_skipped_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [line(0), b"[" * 100_000 + b"\n", line(1)])
    result = read_logs(path, LogQuery())
    assert [e.data["msg"] for e in result.entries] == ["message 0", "message 1"]
    assert result.skipped == 1


def test_query_normalises_and_checks_its_values() -> None:
    assert LogQuery(min_level="error").min_level == "ERROR"
    with pytest.raises(ValueError, match="min_level"):
        LogQuery(min_level="loud")
    with pytest.raises(ValueError, match="lines"):
        LogQuery(lines=-1)


def test_reverse_blocks_with_a_line_much_longer_than_a_block(tmp_path: Path) -> None:
    lines = [b"a\n", b"x" * 100_000 + b"\n", b"b\n", b"y" * 5_000]
    path = write(tmp_path / "a.jsonl", lines)
    with path.open("rb") as handle:
        chunks = list(reverse_blocks(handle, path.stat().st_size, block=64))
    assert b"".join(reversed(chunks)) == b"".join(lines)
    assert all(chunk for chunk in chunks)


@pytest.mark.slow
def test_many_lines_stream_in_bounded_memory(tmp_path: Path) -> None:
    """-n 100000000 on a 60 MB log: every line, in order, without holding the log."""
    path = tmp_path / "big.jsonl"
    # The shape our writer gives every line (about 245 bytes).
    record = {
        **json.loads(line(0)),
        "logger": "assistant.pipeline",
        "service": "assistant",
        "environment": "production",
        "version": "0.1.0",
        "pid": 4242,
    }
    with path.open("wb") as out:
        for start in range(0, 250_000, 10_000):
            out.write(
                b"".join(
                    json.dumps(
                        {
                            **record,
                            "msg": f"request {n} handled in {n % 1000} ms",
                            "conversation_id": f"c{n // 5000:07x}",
                            "message_id": f"m{n}",
                        },
                        separators=(",", ":"),
                    ).encode()
                    + b"\n"
                    for n in range(start, start + 10_000)
                )
            )
    size = path.stat().st_size
    assert size > 55_000_000

    # A forked child starts with its parent's peak RSS (Linux keeps it across exec),
    # so the CLI is started by a small Python process, not by pytest (~100 MB here).
    measure = (
        "import os, subprocess, sys\n"
        "with open(sys.argv[1], 'wb') as sink:\n"
        "    child = subprocess.Popen(sys.argv[2:], stdout=sink)\n"
        "    _, status, usage = os.wait4(child.pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
    )

    def peak_rss(*args: str) -> tuple[int, Path]:
        output = tmp_path / f"out-{len(args)}.jsonl"
        command = [installed_assistant(), "monitor", "logs", "--file", str(path), "--json", *args]
        report = subprocess.run(
            [sys.executable, "-c", measure, str(output), *command],
            capture_output=True,
            text=True,
            check=True,
            env=subprocess_env(),
        )
        code, max_rss_kib = map(int, report.stdout.split())
        assert code == 0, report.stderr
        return max_rss_kib * 1024, output

    baseline, _ = peak_rss("-n", "10")
    peak, output = peak_rss("-n", "100000000", "--level", "trace")
    mib = 2**20
    print(f"peak RSS {peak / mib:.1f} MiB (-n 10: {baseline / mib:.1f}), log {size / mib:.1f} MiB")
    assert output.read_bytes() == path.read_bytes()
    # What streaming adds over `-n 10` (the interpreter and its imports, ~23 MiB here,
    # vary by a few MiB from run to run: an absolute bound of size / 2 = 30 MiB failed
    # at 30.2). Holding the log would add at least its 60 MB.
    assert peak - baseline < size / 4
    assert peak - baseline < 32 * 2**20


def test_since_leaves_out_lines_without_a_time(tmp_path: Path) -> None:
    # Kept, a line without a time was shown or not depending on whether the older
    # line that stops the scan was a candidate: a filter added lines.
    path = write(
        tmp_path / "a.jsonl",
        [b'{"level":"INFO","msg":"no time","conversation_id":"a"}\n', line(1, minutes=-60)],
    )
    since = BASE - timedelta(minutes=30)
    assert read_logs(path, LogQuery(since=since)).entries == []
    assert read_logs(path, LogQuery(since=since, conversation="a")).entries == []
