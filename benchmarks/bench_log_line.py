"""Cost of one JSON log line written to the file sink, in microseconds per line.

Measured in one run, with the same message (``"message {i}"``) and the same number
of lines for every variant:

* ``ours``: ``configure_logging(...)`` (console at CRITICAL, so only the JSON file
  sinks do work), then ``logger.info("message {}", i)``;
* ``ours, bound context``: the same through
  ``logger.bind(conversation_id="c1", message_id="m1").info(...)``;
* ``loguru serialize=True``: loguru's own JSON file sink, ``logger.add(file,
  serialize=True)`` after ``logger.remove()``;
* ``stdlib logging``: a ``FileHandler`` with a small JSON formatter (``json.dumps`` of
  ts, level, msg, logger);
* ``loguru floor``: loguru with a single sink that does nothing. Not a competitor:
  it is what ``logger.info`` costs before any sink works, the floor under ours;
* ``ours, redaction stubbed``: ours with ``redact_text`` swapped for the identity in
  this process (a diagnostic: the gap to ``ours`` is what redaction costs in place).

Each variant runs a warm-up, then N timed lines (default 100,000); the repeats of
the variants are interleaved (so drift and busy neighbours hit them alike) and the
best of 5 counts. Every file is checked to hold exactly the lines logged. The run
ends by saying how much CPU other processes used meanwhile: this is a 2-core
machine, and one busy neighbour inflates every figure.

Then our per-line cost is split into its parts, each timed in isolation:
``JsonLineFormatter.format`` (and, inside it, ``redact_text`` and the JSON
encoding) and ``RotatingFileWriter.write``; what is left is loguru's dispatch.

Target: ours <= 12 us/line. Reference machine: loguru serialize=True ~34 us/line,
stdlib ~11 us/line, so the target is about 1.1x stdlib and 0.35x loguru's
serializer; both forms are printed.

Run: ``.venv/bin/python benchmarks/bench_log_line.py [--lines N] [--repeats R]
[--json] [--profile]``. About 2 minutes with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import shutil
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import LoadWatch, dump_json, machine_info, print_machine, print_table, verdict

TARGET_US = 12.0
REFERENCE_SERIALIZE_US = 34.0
REFERENCE_STDLIB_US = 11.0

Runner = Callable[[int, int], None]


@dataclass
class Sink:
    """One variant set up in a temporary directory: how to log, and how to stop."""

    run: Runner  # run(start, count) logs lines start .. start+count-1
    close: Callable[[], None]
    path: Path | None  # the file written, checked after the run


def _ours(tmp: Path, *, bound: bool) -> Sink:
    from loguru import logger

    from assistant_monitoring.logs import configure_logging

    handle = configure_logging(
        log_dir=tmp,
        level="INFO",
        console_level="CRITICAL",
        environment="bench",
        version="0",
        max_bytes=1 << 30,
        max_files=5,
        color=False,
        stream=io.StringIO(),
    )
    info = (logger.bind(conversation_id="c1", message_id="m1") if bound else logger).info

    def run(start: int, count: int) -> None:
        for i in range(start, start + count):
            info("message {}", i)

    def close() -> None:
        handle.close()
        logger.remove()

    return Sink(run, close, handle.log_file)


def _ours_without_redaction(tmp: Path) -> Sink:
    """Ours with ``redact_text`` replaced by the identity, in this process only.

    A diagnostic, not a configuration anyone runs: the gap to ``ours`` is what the
    redaction of each line costs in place (the package is not modified).
    """
    from assistant_monitoring.logs import jsonformat

    original = jsonformat.redact_text
    jsonformat.redact_text = lambda text: text
    try:
        sink = _ours(tmp, bound=False)
    except BaseException:
        jsonformat.redact_text = original
        raise
    close = sink.close

    def restore() -> None:
        close()
        jsonformat.redact_text = original

    return Sink(sink.run, restore, sink.path)


def _loguru_serialize(tmp: Path) -> Sink:
    from loguru import logger

    logger.remove()
    path = tmp / "loguru.jsonl"
    handler_id = logger.add(path, serialize=True, level="INFO")
    info = logger.info

    def run(start: int, count: int) -> None:
        for i in range(start, start + count):
            info("message {}", i)

    return Sink(run, lambda: logger.remove(handler_id), path)


def _loguru_floor(_tmp: Path) -> Sink:
    from loguru import logger

    logger.remove()
    handler_id = logger.add(lambda _message: None, format="{message}", level="INFO")
    info = logger.info

    def run(start: int, count: int) -> None:
        for i in range(start, start + count):
            info("message {}", i)

    return Sink(run, lambda: logger.remove(handler_id), None)


class _StdlibJsonFormatter(logging.Formatter):
    """The small JSON formatter people write for the stdlib: four fields, json.dumps."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        return json.dumps(
            {
                "ts": f"{seconds}.{micros:06d}Z",
                "level": record.levelname,
                "msg": record.getMessage(),
                "logger": record.name,
            }
        )


def _stdlib(tmp: Path) -> Sink:
    path = tmp / "stdlib.jsonl"
    log = logging.getLogger("bench.stdlib")
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_StdlibJsonFormatter())
    log.addHandler(handler)
    info = log.info

    def run(start: int, count: int) -> None:
        for i in range(start, start + count):
            info("message %s", i)

    def close() -> None:
        log.removeHandler(handler)
        handler.close()

    return Sink(run, close, path)


VARIANTS: dict[str, Callable[[Path], Sink]] = {
    "ours": lambda tmp: _ours(tmp, bound=False),
    "ours, bound context": lambda tmp: _ours(tmp, bound=True),
    "loguru serialize=True": _loguru_serialize,
    "stdlib logging + JSON": _stdlib,
    "loguru floor (no-op sink)": _loguru_floor,
    "ours, redaction stubbed (diagnostic)": _ours_without_redaction,
}


def _count_lines(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return data.count(b"\n"), len(data)


def measure_once(make: Callable[[Path], Sink], lines: int, warmup: int) -> tuple[float, float]:
    """Seconds per line for one repeat, and the bytes per line of the file written."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-log-line-"))
    try:
        sink = make(tmp)
        try:
            sink.run(0, warmup)
            start = time.perf_counter()
            sink.run(warmup, lines)
            elapsed = time.perf_counter() - start
        finally:
            sink.close()
        bytes_per_line = 0.0
        if sink.path is not None:
            count, size = _count_lines(sink.path)
            if count != warmup + lines:
                raise RuntimeError(f"{sink.path}: {count} lines, expected {warmup + lines}")
            bytes_per_line = size / count
        return elapsed / lines, bytes_per_line
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _best_per_call(func: Callable[[], object], number: int, repeats: int = 5) -> float:
    return min(timeit.Timer(func).repeat(repeat=repeats, number=number)) / number


def breakdown(number: int) -> list[tuple[str, float]]:
    """Our per-line parts, each timed alone (seconds per call)."""
    from loguru import logger

    from assistant_monitoring.logs.jsonformat import JsonLineFormatter
    from assistant_monitoring.logs.writer import RotatingFileWriter
    from assistant_monitoring.redact import redact_text

    records: list[Any] = []
    logger.remove()
    handler_id = logger.add(lambda message: records.append(message.record), format="{message}")
    logger.info("message {}", 123456)
    logger.bind(conversation_id="c1", message_id="m1").info("message {}", 123456)
    logger.remove(handler_id)
    plain, bound = records

    formatter = JsonLineFormatter(service="assistant", environment="bench", version="0")
    line = formatter.format(plain)
    text = line.decode().rstrip("\n")
    fields = json.loads(text)
    message = plain["message"]
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

    parts = [
        (
            "JsonLineFormatter.format (whole)",
            _best_per_call(lambda: formatter.format(plain), number),
        ),
        ("  of which redact_text(line)", _best_per_call(lambda: redact_text(text), number)),
        ("  of which JSON encoding", _best_per_call(lambda: encode(fields), number)),
        (
            "redact_text(message only), for scale",
            _best_per_call(lambda: redact_text(message), number),
        ),
        (
            "JsonLineFormatter.format, bound",
            _best_per_call(lambda: formatter.format(bound), number),
        ),
    ]
    tmp = Path(tempfile.mkdtemp(prefix="bench-log-line-"))
    try:
        writer = RotatingFileWriter(tmp / "w.jsonl", max_bytes=1 << 30, max_files=5)
        try:
            parts.append(
                ("RotatingFileWriter.write", _best_per_call(lambda: writer.write(line), number))
            )
        finally:
            writer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return parts


def profile_ours(lines: int) -> None:
    """cProfile of our sink, the 20 functions with the most time of their own."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-log-line-"))
    try:
        sink = _ours(tmp, bound=False)
        try:
            sink.run(0, 1000)
            profiler = cProfile.Profile()
            profiler.enable()
            sink.run(1000, lines)
            profiler.disable()
        finally:
            sink.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ncProfile of ours, {lines:,} lines (times inflated by the profiler):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="timed lines per repeat")
    parser.add_argument("--warmup", type=int, default=10_000, help="untimed lines first")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the best counts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--profile", action="store_true", help="also cProfile our sink")
    args = parser.parse_args()
    watch = LoadWatch()

    per_line: dict[str, list[float]] = {name: [] for name in VARIANTS}
    sizes: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, make in VARIANTS.items():
            seconds, size = measure_once(make, args.lines, args.warmup)
            per_line[name].append(seconds)
            sizes[name] = size
    best = {name: min(values) * 1e6 for name, values in per_line.items()}
    parts = [(label, seconds * 1e6) for label, seconds in breakdown(number=50_000)]

    ours = best["ours"]
    stdlib = best["stdlib logging + JSON"]
    serialize = best["loguru serialize=True"]
    floor = best["loguru floor (no-op sink)"]
    formatted = parts[0][1]
    written = next(us for label, us in parts if label == "RotatingFileWriter.write")
    dispatch = ours - formatted - written
    met = ours <= TARGET_US
    info = machine_info()
    document = {
        "benchmark": "log_line",
        "machine": info,
        "load": watch.report(),
        "lines": args.lines,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "us_per_line_best": best,
        "us_per_line_all": {k: [v * 1e6 for v in vs] for k, vs in per_line.items()},
        "bytes_per_line": sizes,
        "breakdown_us": dict(parts),
        "loguru_dispatch_us": dispatch,
        "target_us": TARGET_US,
        "target_met": met,
    }
    if args.json:
        dump_json(document)
    else:
        print_machine(info)
        print(
            f"{args.lines:,} lines per repeat after {args.warmup:,} warm-up lines, "
            f"best of {args.repeats}\n"
        )
        rows = [
            (
                name,
                f"{us:.2f}",
                f"{statistics.median(per_line[name]) * 1e6:.2f}",
                f"{us / stdlib:.2f}x",
                f"{us / serialize:.2f}x",
                f"{sizes[name]:.0f}" if sizes.get(name) else "-",
            )
            for name, us in best.items()
        ]
        print_table(
            ["variant", "best us/line", "median", "vs stdlib", "vs loguru ser.", "bytes/line"], rows
        )
        print("\nour line, part by part (each timed alone, best of 5 x 50,000 calls):")
        part_rows = [(label, f"{us:.2f}", f"{us / ours:.0%}") for label, us in parts]
        part_rows.append(("loguru dispatch (ours - format - write)", f"{dispatch:.2f}", ""))
        part_rows.append(("  loguru floor, for comparison", f"{floor:.2f}", f"{floor / ours:.0%}"))
        print_table(["part", "us/call", "of ours"], part_rows)
        print(
            f"\ntarget: ours <= {TARGET_US:.0f} us/line: {verdict(met)} ({ours:.2f} us/line); "
            f"as ratios (reference machine): <= {TARGET_US / REFERENCE_STDLIB_US:.2f}x stdlib "
            f"(here {ours / stdlib:.2f}x), <= {TARGET_US / REFERENCE_SERIALIZE_US:.2f}x loguru "
            f"serialize (here {ours / serialize:.2f}x)"
        )
        print(watch.describe())
    if args.profile:
        profile_ours(min(args.lines, 50_000))


if __name__ == "__main__":
    main()
