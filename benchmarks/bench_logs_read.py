"""Reading the end of a 1 GiB JSON-lines log: ``assistant monitor logs`` against tail and tac|grep.

The log is generated once and cached in ``benchmarks/.data/`` (gitignored): about
4.2 million lines in exactly the shape ``JsonLineFormatter`` writes (keys ts, level,
msg, logger, service, environment, version, pid, conversation_id, message_id; error
lines add exception and exc_type), one ERROR line per 1,000 lines, the rest INFO.
The generator checks its key order against a line formatted by the real formatter.

Every figure is a pyperf benchmark, run in pyperf's worker processes (file in the
page cache):

* in-process (``Runner.bench_func``): ``read_logs(path, LogQuery(lines=100))`` and
  ``read_logs(path, LogQuery(lines=100, min_level="ERROR"))``, and the whole CLI
  in-process, ``assistant.cli.main(["monitor", "logs", "--file", path, "-n", "100"])``
  (and with ``--level error``) with stdout sent to /dev/null;
* references: ``tail -n 100 FILE`` (``Runner.bench_command``) and
  ``tac FILE | grep -m100 '"level":"ERROR"'`` (``bench_func`` around the two
  processes: ``bench_command`` sends grep's output to /dev/null, where GNU grep 3.8
  does not stop at ``-m100``);
* the installed command (``bench_command``): ``assistant monitor logs --file FILE
  -n 100`` and ``--level error -n 100``, with ``assistant --version`` for the
  start-up cost both pay (bytecode cached, see ``_perf.py``).

Every run uses ASSISTANT_ENV_FILE=none and a temporary ASSISTANT_DATA_DIR. Before
the benchmarks the results are checked: 100 entries, the same lines tail and
tac|grep print, and every command exits 0.

Targets: last 100 lines < 5 ms in-process; 100 errors < 1.5x the tac|grep time
(judged in-process, and shown for the whole command too); from the medians.

Run: ``.venv/bin/python benchmarks/bench_logs_read.py [--size-mib N] [--fast]
[-o FILE.json]`` (and any other pyperf option). The first run spends about a
minute writing the file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import ASSISTANT, DATA_DIR
from _perf import CommandBench, Target, command_env, machine, median, summary, verdict
from _perf_inprocess import Load

GENERATOR_VERSION = 1
ERROR_EVERY = 1000
LAST_LINES_TARGET_S = 0.005
ERRORS_TARGET_RATIO = 1.5
ERROR_PATTERN = '"level":"ERROR"'

_INFO_MESSAGES = (
    "request handled in {n} ms",
    "classified intent as question (confidence 0.{n})",
    "retrieved {n} documents from the index",
    "streamed reply: {n} tokens",
)
_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/assistant/llm.py", line 88, in call\n'
    "    response = client.messages.create(**request)\n"
    "TimeoutError: upstream timeout after 30.0 s"
)


def _prefix(ts: str, level: str, msg: str, logger_name: str, pid: int) -> str:
    return (
        f'{{"ts":"{ts}","level":"{level}","msg":{json.dumps(msg)},"logger":"{logger_name}",'
        f'"service":"assistant","environment":"production","version":"0.1.0","pid":{pid}'
    )


def _second_lines(second: int, first_index: int) -> str:
    """The 1,000 lines logged during one second: 999 INFO lines and one ERROR last."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    pid = 4000 + (second % 7)
    conversation = f"c{second // 60:07x}"
    exception = json.dumps(_TRACEBACK)
    lines = []
    for j in range(ERROR_EVERY):
        index = first_index + j
        ts = f"{stamp}.{j * 1000 + (index % 997):06d}Z"
        ids = f',"conversation_id":"{conversation}","message_id":"m{index}"'
        if j == ERROR_EVERY - 1:
            msg = f"LLM call failed for message m{index}: upstream timeout"
            head = _prefix(ts, "ERROR", msg, "assistant.llm", pid)
            lines.append(f'{head}{ids},"exception":{exception},"exc_type":"TimeoutError"}}\n')
        else:
            msg = _INFO_MESSAGES[index % len(_INFO_MESSAGES)].format(n=index % 1000)
            lines.append(f"{_prefix(ts, 'INFO', msg, 'assistant.pipeline', pid)}{ids}}}\n")
    return "".join(lines)


def _check_shape_against_formatter() -> None:
    """Fail loudly if the generated lines drift from what JsonLineFormatter writes."""
    from loguru import logger

    from assistant_monitoring.logs.jsonformat import JsonLineFormatter

    formatter = JsonLineFormatter(service="assistant", environment="production", version="0.1.0")
    real: list[str] = []
    logger.remove()
    handler_id = logger.add(
        lambda message: real.append(formatter.format(message.record).decode()),
        format="{message}",
    )
    bound = logger.bind(conversation_id="c1", message_id="m1")
    bound.info("request handled in 1 ms")
    try:
        raise TimeoutError("upstream timeout")
    except TimeoutError:
        bound.exception("LLM call failed")
    logger.remove(handler_id)

    ours = _second_lines(1_700_000_000, 0).splitlines()
    for generated, formatted in ((ours[0], real[0]), (ours[-1], real[1])):
        keys, expected = list(json.loads(generated)), list(json.loads(formatted))
        if keys != expected:
            raise RuntimeError(f"generated keys {keys} differ from the formatter's {expected}")
        compact = json.dumps(json.loads(generated), ensure_ascii=False, separators=(",", ":"))
        if generated != compact:
            raise RuntimeError(f"generated line is not compact JSON: {generated}")


def ensure_log(size: int) -> tuple[Path, dict[str, Any]]:
    """The cached log of at least ``size`` bytes, generated when missing or stale."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"logs-{size >> 20}mib.jsonl"
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator") == GENERATOR_VERSION and meta.get("size") == path.stat().st_size:
            return path, meta

    _check_shape_against_formatter()
    print(f"generating {path} ({size >> 20} MiB), once...", file=sys.stderr)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    second, index, written, lines, errors = 1_790_000_000, 0, 0, 0, 0
    with partial.open("wb") as out:
        while written < size:
            # 16 seconds of log (about 4 MiB) per write; the last write stops at the
            # last whole line that fits, so the file is ``size`` bytes or just under.
            chunk = "".join(_second_lines(second + k, index + k * ERROR_EVERY) for k in range(16))
            data = chunk.encode()
            if written + len(data) > size:
                data = data[: data.rfind(b"\n", 0, size - written) + 1]
                if not data:
                    break
            out.write(data)
            written += len(data)
            lines += data.count(b"\n")
            errors += data.count(ERROR_PATTERN.encode())
            second += 16
            index += 16 * ERROR_EVERY
    partial.replace(path)
    meta = {
        "generator": GENERATOR_VERSION,
        "size": path.stat().st_size,
        "lines": lines,
        "errors": errors,
        "seconds_to_generate": round(time.perf_counter() - started, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return path, meta


def tac_grep(path: Path) -> bytes:
    """``tac FILE | grep -m100 '"level":"ERROR"'`` without a shell in between.

    grep's output goes to a pipe we read, as it would to a terminal or a pager: with
    its stdout on /dev/null, GNU grep 3.8 ignores ``-m`` in effect and reads the whole
    input (1.2 s instead of 0.05 s on the 1 GiB file), which would flatter us.
    """
    tac = subprocess.Popen(["tac", str(path)], stdout=subprocess.PIPE)
    assert tac.stdout is not None
    grep = subprocess.Popen(
        ["grep", "-m100", ERROR_PATTERN], stdin=tac.stdout, stdout=subprocess.PIPE
    )
    tac.stdout.close()  # grep holds the pipe now; tac gets SIGPIPE when grep stops
    output, _ = grep.communicate()
    tac.wait()
    return output or b""


def check_results(path: Path) -> None:
    """The reader must return what tail and tac|grep print, in the same order."""
    from assistant_monitoring.logs.reader import LogQuery, read_logs

    tail = subprocess.run(
        ["tail", "-n", "100", str(path)], capture_output=True, check=True
    ).stdout.decode()
    last = read_logs(path, LogQuery(lines=100))
    if [entry.raw for entry in last.entries] != tail.splitlines():
        raise RuntimeError("read_logs(lines=100) differs from tail -n 100")
    errors = read_logs(path, LogQuery(lines=100, min_level="ERROR"))
    expected = list(reversed(tac_grep(path).decode().splitlines()))
    if [entry.raw for entry in errors.entries] != expected:
        raise RuntimeError("read_logs(min_level=ERROR) differs from tac | grep -m100")
    if last.skipped or errors.skipped:
        raise RuntimeError(f"read_logs skipped lines: {last.skipped}, {errors.skipped}")


def run_cli_in_process(argv: Sequence[str]) -> int:
    """``assistant.cli.main(argv)`` with stdout to /dev/null; the exit code."""
    from assistant.cli import main

    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            main(list(argv))
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


LAST, ERRORS = "read_logs, last 100 (in-process)", "read_logs, 100 errors (in-process)"
TAIL, TAC_GREP = "tail -n 100", "tac | grep -m100 ERROR"
CMD_ERRORS = "assistant monitor logs --level error -n 100"


def file_args(path: str) -> list[str]:
    return ["monitor", "logs", "--file", path, "-n", "100"]


def error_args(path: str) -> list[str]:
    return [*file_args(path), "--level", "error"]


def in_process(path: str) -> dict[str, Callable[[], object]]:
    """The in-process benchmarks and the tac|grep reference (functions of ``path``)."""
    from assistant_monitoring.logs.reader import LogQuery, read_logs

    file = Path(path)
    return {
        LAST: functools.partial(read_logs, file, LogQuery(lines=100)),
        ERRORS: functools.partial(read_logs, file, LogQuery(lines=100, min_level="ERROR")),
        "CLI main() -n 100 (in-process)": functools.partial(run_cli_in_process, file_args(path)),
        "CLI main() --level error (in-process)": functools.partial(
            run_cli_in_process, error_args(path)
        ),
        TAC_GREP: functools.partial(tac_grep, file),
    }


def commands(path: str) -> dict[str, list[str]]:
    return {
        TAIL: ["tail", "-n", "100", path],
        "assistant --version": [str(ASSISTANT), "--version"],
        "assistant monitor logs -n 100": [str(ASSISTANT), *file_args(path)],
        CMD_ERRORS: [str(ASSISTANT), *error_args(path)],
    }


def run_benchmarks(bench: CommandBench, env: dict[str, str]) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    path = str(bench.state["path"])
    for name, func in in_process(path).items():
        bench.func(name, func, env)
    for name, argv in commands(path).items():
        bench.command(name, argv, env)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=1024, help="log size (default 1 GiB)")


def main() -> None:
    bench = CommandBench(
        __doc__ or "", processes=10, values=3, loops=0, add_arguments=add_arguments
    )
    if bench.is_worker:
        run_benchmarks(bench, {})
        return

    load = Load()
    path, meta = ensure_log(bench.args.size_mib << 20)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-logs-read-"))
    try:
        env = command_env(ASSISTANT_DATA_DIR=str(data_dir))
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            check_results(path)
            for argv in (file_args(str(path)), error_args(str(path))):
                if (code := run_cli_in_process(argv)) != 0:
                    raise RuntimeError(f"assistant {' '.join(argv)} exited {code}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        for argv in commands(str(path)).values():
            bench.check(argv, env)
        bench.share(path=str(path))
        run_benchmarks(bench, env)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    results = bench.results
    last, errors = median(results[LAST]), median(results[ERRORS])
    errors_ratio = errors / median(results[TAC_GREP])
    cmd_ratio = median(results[CMD_ERRORS]) / median(results[TAC_GREP])
    print()
    print(machine(list(results.values())))
    print(
        f"file: {path.name}, {meta['size'] / (1 << 30):.2f} GiB, {meta['lines']:,} lines, "
        f"{meta['errors']:,} errors (in the page cache)"
    )
    last_names = [LAST, "CLI main() -n 100 (in-process)", TAIL, "assistant --version"]
    last_names.append("assistant monitor logs -n 100")
    error_names = [ERRORS, "CLI main() --level error (in-process)", TAC_GREP, CMD_ERRORS]
    derived = summary(
        {name: results[name] for name in last_names},
        TAIL,
        {LAST: Target(f"< {LAST_LINES_TARGET_S * 1000:.0f} ms", last < LAST_LINES_TARGET_S)},
        title="last 100 lines",
    )
    derived |= summary(
        {name: results[name] for name in error_names},
        TAC_GREP,
        {
            ERRORS: Target(
                f"< {ERRORS_TARGET_RATIO}x tac|grep", errors_ratio < ERRORS_TARGET_RATIO
            ),
            CMD_ERRORS: Target(
                f"< {ERRORS_TARGET_RATIO}x tac|grep (whole command)",
                cmd_ratio < ERRORS_TARGET_RATIO,
            ),
        },
        title="last 100 errors",
    )
    bench.annotate({name: {**entry, **load.metadata()} for name, entry in derived.items()})
    print(
        f"\ntarget: last 100 lines in-process < {LAST_LINES_TARGET_S * 1000:.0f} ms: "
        f"{verdict(last < LAST_LINES_TARGET_S)} ({last * 1000:.2f} ms)"
    )
    print(
        f"target: 100 errors < {ERRORS_TARGET_RATIO}x tac|grep: in-process "
        f"{verdict(errors_ratio < ERRORS_TARGET_RATIO)} ({errors_ratio:.2f}x); "
        f"whole command {verdict(cmd_ratio < ERRORS_TARGET_RATIO)} ({cmd_ratio:.2f}x)"
    )
    print(load.describe())


if __name__ == "__main__":
    main()
