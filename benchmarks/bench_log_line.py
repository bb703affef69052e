"""Cost of one JSON log line written to the file sink, in microseconds per line.

Each variant is a pyperf benchmark (``Runner.bench_time_func``), run in pyperf's
worker processes, with the same message (``"message {i}"``):

* ``ours``: ``configure_logging(...)`` (console at CRITICAL, so only the JSON file
  sinks do work), then ``logger.info("message {}", i)``;
* ``ours, bound context``: the same through
  ``logger.bind(conversation_id="c1", message_id="m1").info(...)``;
* ``loguru serialize=True``: loguru's own JSON file sink, ``logger.add(file,
  serialize=True)`` after ``logger.remove()``;
* ``stdlib logging + JSON``: a ``FileHandler`` with a small JSON formatter
  (``json.dumps`` of ts, level, msg, logger);
* ``loguru floor (no-op sink)``: loguru with a single sink that does nothing. Not a
  competitor: it is what ``logger.info`` costs before any sink works;
* ``ours, redaction stubbed (diagnostic)``: ours with ``redact_text`` swapped for the
  identity in the worker (the gap to ``ours`` is what redaction costs in place).

Every value sets its sink up in a new temporary directory, logs 1,000 untimed
lines, times pyperf's ``loops`` lines, closes the sink and checks that the file
holds exactly the lines logged. Then our per-line cost is split into its parts,
each a benchmark of its own (``part: ...``; ``--no-parts`` skips them):
``JsonLineFormatter.format`` (and, inside it, ``redact_text`` and the JSON
encoding) and ``RotatingFileWriter.write``; what is left is loguru's dispatch.

Target: ours <= 12 us/line. Reference machine: loguru serialize=True ~34 us/line,
stdlib ~11 us/line, so the target is about 1.1x stdlib and 0.35x loguru's
serializer; both forms are printed, from the medians of pyperf's values in this run. The run ends by
saying how much CPU other processes used meanwhile (a 2-core machine: one busy
neighbour inflates every figure).

Run: ``.venv/bin/python benchmarks/bench_log_line.py [--fast] [-o FILE.json]
[--no-parts] [--cprofile]`` (and any other pyperf option). ``--cprofile`` adds a
cProfile of our sink over 50,000 lines.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import logging
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyperf
from _perf_inprocess import (
    Load,
    annotate,
    done,
    is_master,
    make_runner,
    median,
    time_calls,
    verdict,
)

WARMUP_LINES = 1000

TARGET_US = 12.0
REFERENCE_SERIALIZE_US = 34.0
REFERENCE_STDLIB_US = 11.0

LogRun = Callable[[int, int], None]


@dataclass
class Sink:
    """One variant set up in a temporary directory: how to log, and how to stop."""

    run: LogRun  # run(start, count) logs lines start .. start+count-1
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


def run_sink(make: Callable[[Path], Sink], lines: int) -> tuple[float, float]:
    """Seconds for ``lines`` lines after the warm-up, and the bytes per line written."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-log-line-"))
    try:
        sink = make(tmp)
        try:
            sink.run(0, WARMUP_LINES)
            start = time.perf_counter()
            sink.run(WARMUP_LINES, lines)
            elapsed = time.perf_counter() - start
        finally:
            sink.close()
        bytes_per_line = 0.0
        if sink.path is not None:
            count, size = _count_lines(sink.path)
            if count != WARMUP_LINES + lines:
                raise RuntimeError(f"{sink.path}: {count} lines, expected {WARMUP_LINES + lines}")
            bytes_per_line = size / count
        return elapsed, bytes_per_line
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def time_variant(loops: int, name: str) -> float:
    """pyperf's time function: ``loops`` lines through a fresh sink of ``name``."""
    return run_sink(VARIANTS[name], loops)[0]


@functools.cache
def _records() -> dict[str, Any]:
    """A plain and a bound loguru record, our formatter, and what it makes of them."""
    from loguru import logger

    from assistant_monitoring.logs.jsonformat import JsonLineFormatter

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
    return {
        "plain": plain,
        "bound": bound,
        "formatter": formatter,
        "line": line,
        "text": text,
        "fields": json.loads(text),
    }


def _format_plain() -> Callable[[], object]:
    r = _records()
    return functools.partial(r["formatter"].format, r["plain"])


def _format_bound() -> Callable[[], object]:
    r = _records()
    return functools.partial(r["formatter"].format, r["bound"])


def _redact_line() -> Callable[[], object]:
    from assistant_monitoring.redact import redact_text

    return functools.partial(redact_text, _records()["text"])


def _redact_message() -> Callable[[], object]:
    from assistant_monitoring.redact import redact_text

    return functools.partial(redact_text, _records()["plain"]["message"])


def _encode() -> Callable[[], object]:
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
    return functools.partial(encoder.encode, _records()["fields"])


@functools.cache  # one writer per worker, kept open
def _write() -> Callable[[], object]:
    import atexit

    from assistant_monitoring.logs.writer import RotatingFileWriter

    tmp = Path(tempfile.mkdtemp(prefix="bench-log-line-"))
    writer = RotatingFileWriter(tmp / "w.jsonl", max_bytes=1 << 30, max_files=5)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    atexit.register(writer.close)
    return functools.partial(writer.write, _records()["line"])


FORMAT = "part: JsonLineFormatter.format (whole)"
WRITE = "part: RotatingFileWriter.write"
PARTS: dict[str, Callable[[], Callable[[], object]]] = {
    FORMAT: _format_plain,
    "part:   of which redact_text(line)": _redact_line,
    "part:   of which JSON encoding": _encode,
    "part: redact_text(message only), for scale": _redact_message,
    "part: JsonLineFormatter.format, bound": _format_bound,
    WRITE: _write,
}


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
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    print(out.getvalue())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-parts", action="store_true", help="skip the part-by-part cases")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile our sink")


def report(benches: dict[str, pyperf.Benchmark], parts: bool) -> dict[str, dict[str, Any]]:
    """Print the ratios, the parts and the verdict; return them as metadata for ``-o``."""
    us = {name: median(bench) * 1e6 for name, bench in benches.items()}
    ours, stdlib = us["ours"], us["stdlib logging + JSON"]
    serialize, floor = us["loguru serialize=True"], us["loguru floor (no-op sink)"]
    sizes = {name: run_sink(make, 1000)[1] for name, make in VARIANTS.items()}
    print(
        f"\n{'variant (median)':<40} {'us/line':>8} {'vs stdlib':>10} "
        f"{'vs loguru ser.':>15} {'bytes/line':>11}"
    )
    annotations: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        size = f"{sizes[name]:.0f}" if sizes[name] else "-"
        print(
            f"{name:<40} {us[name]:>8.2f} {us[name] / stdlib:>9.2f}x "
            f"{us[name] / serialize:>14.2f}x {size:>11}"
        )
        annotations[name] = {
            "ratio_vs_stdlib": round(us[name] / stdlib, 3),
            "ratio_vs_loguru_serialize": round(us[name] / serialize, 3),
        }
    if parts:
        formatted, written = us[FORMAT], us[WRITE]
        dispatch = ours - formatted - written
        print("\nour line, part by part (each a benchmark of its own):")
        for name in PARTS:
            print(
                f"  {name.removeprefix('part: '):<45} {us[name]:>6.2f} us {us[name] / ours:>4.0%}"
            )
        print(f"  {'loguru dispatch (ours - format - write)':<45} {dispatch:>6.2f} us")
        print(f"  {'  loguru floor, for comparison':<45} {floor:>6.2f} us {floor / ours:>4.0%}")
        annotations["ours"]["loguru_dispatch_us"] = round(dispatch, 3)
    met = ours <= TARGET_US
    print(
        f"\ntarget: ours <= {TARGET_US:.0f} us/line: {verdict(met)} ({ours:.2f} us/line); "
        f"as ratios (reference machine): <= {TARGET_US / REFERENCE_STDLIB_US:.2f}x stdlib "
        f"(here {ours / stdlib:.2f}x), <= {TARGET_US / REFERENCE_SERIALIZE_US:.2f}x loguru "
        f"serialize (here {ours / serialize:.2f}x)"
    )
    annotations["ours"].update(target_us=TARGET_US, target_met=verdict(met))
    return annotations


def main() -> None:
    runner = make_runner(__doc__ or "", add_arguments, forward=["--no-parts"])
    load = Load() if is_master(runner) else None
    benches = {name: runner.bench_time_func(name, time_variant, name) for name in VARIANTS}
    if not runner.args.no_parts:
        for name, make in PARTS.items():
            benches[name] = runner.bench_time_func(name, time_calls, make)
    if load is None:
        return
    print(f"\n{load.machine([b for b in benches.values() if b is not None])}")
    annotations = report(done(benches), parts=not runner.args.no_parts)
    annotate(runner, {name: {**annotations.get(name, {}), **load.metadata()} for name in benches})
    print(load.describe())
    if runner.args.cprofile:
        profile_ours(50_000)


if __name__ == "__main__":
    main()
