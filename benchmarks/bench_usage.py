"""Usage reports over 1 million runs, and the statusline, against plain references.

Setup: a fresh ``monitoring.db`` (made by ``MetricsStore``, with every migration)
holding ``--runs`` (1,000,000) pipeline runs over the last 30 days, rows as wide as
the pipeline writes them (stage and classifier JSON), over four models of two
providers, 20,000 sessions, 100,000 conversations and ten repositories.

Measured with pyperf, in the same run (by default 3 worker processes x (1 warm-up +
2 values) per benchmark, one benchmark after the other):

1. ours, in-process (``Runner.bench_time_func``, each worker opening the store once,
   untimed): ``query_usage`` for the 30-day daily report in Europe/Paris (local
   days, per provider and model underneath, cache savings priced; from the usage
   rollup), the model and repo reports (rollup too) and the session report (runs
   table);
2. the reference: the same sums by a plain ``GROUP BY date(started_at, 'unixepoch')``
   in the sqlite3 module, UTC days (it cannot do a time zone);
3. ``assistant monitor statusline`` wall time against ``python -c pass`` (the floor
   of any Python command), and ``assistant monitor usage --json`` wall time
   (``Runner.bench_command``; bytecode cached, ``PYTHONDONTWRITEBYTECODE`` unset; see
   ``_perf.py``).

Targets (issue 13): the 30-day report < 300 ms in-process and <= 1.2x the plain
GROUP BY (medians); the statusline < 60 ms wall (median).

Run: ``.venv/bin/python benchmarks/bench_usage.py [--runs N] [pyperf options: --fast,
-p N, -n N, -o FILE ...]``. About 2 minutes (the store takes ~30 s to build).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import ASSISTANT, PYTHON
from _perf import CommandBench, Target, command_env, machine, median, summary, verdict

from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.rollup import rebuild
from assistant_monitoring.usage.periods import Window
from assistant_monitoring.usage.report import query_usage
from assistant_monitoring.zones import resolve_zone

NOW = time.time()
DAY = 86400.0
MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-5"),
    ("openai", "gpt-5-mini"),
]
STAGES = json.dumps(
    [
        {"name": n, "status": "success", "started_ms": 1.0, "duration_ms": 12.5, "error_type": None}
        for n in ("context", "classify", "generate", "persist")
    ]
)
CLASSIFIERS = json.dumps(
    {
        "intent": {"label": "question", "confidence": 0.91, "outcome": "ok"},
        "sentiment": {"label": "neutral", "confidence": 0.77, "outcome": "ok"},
    }
)
REFERENCE_SQL = """
SELECT date(started_at, 'unixepoch'), provider, model, count(*), sum(status = 'failure'),
    sum(status = 'interrupted'), sum(input_tokens), sum(output_tokens), sum(reasoning_tokens),
    sum(cache_read_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens),
    total(cost_usd), sum(cost_usd IS NOT NULL), min(started_at), max(started_at)
FROM pipeline_runs WHERE started_at >= ? AND started_at < ? GROUP BY 1, 2, 3
"""


def build(path: Path, runs: int) -> float:
    started = time.perf_counter()
    MetricsStore(path).connect().close()
    prices = PriceTable()
    rng = random.Random(13)
    step = 30 * DAY / runs

    def rows() -> Any:
        for n in range(runs):
            provider, model = MODELS[n % len(MODELS)]
            tokens = (rng.randint(200, 4000), rng.randint(20, 800), rng.choice((0, 0, 2048)))
            price = prices.price(model)
            assert price is not None
            cost = price.cost(input=tokens[0], output=tokens[1], cache_read=tokens[2])
            failed = n % 50 == 0
            yield (
                f"run_{n:012x}",
                NOW - n * step,
                NOW - n * step + 0.8,
                f"c_{n % 100_000:08x}",
                f"m_{n:012x}",
                "failure" if failed else "success",
                812.5,
                STAGES,
                CLASSIFIERS,
                provider,
                model,
                0 if failed else tokens[0],
                0 if failed else tokens[1],
                0 if failed else tokens[2],
                None if failed else cost,
                None if failed else prices.version,
                f"s-{n % 20_000:08x}",
                f"repo-{n % 10}",
                "main",
            )

    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO pipeline_runs (id, started_at, finished_at, conversation_id, "
            "message_id, status, duration_ms, stages, classifiers, provider, model, "
            "input_tokens, output_tokens, cache_read_tokens, cost_usd, price_version, "
            "session_id, repo, branch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows(),
        )
    with sqlite3.connect(path) as conn:
        # Inserted past RunStore, so the rollup is computed the migration's way.
        rebuild(conn)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


# -- in process, in pyperf's workers ----------------------------------------------------

GROUPS = ("daily", "model", "repo", "session")
REFERENCE = "plain GROUP BY date() (UTC), sqlite3 module"
DAILY = "usage daily, 30 days, Europe/Paris"
STATUSLINE = "monitor statusline"
PASS = "python -c pass"


@functools.cache
def connections(path: str, now: float) -> tuple[Any, sqlite3.Connection, Window]:
    """Our store's connection, a plain read-only one, and the 30-day window."""
    store = MetricsStore(Path(path), read_only_ok=True)
    plain = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return store.connect(), plain, Window(now - 30 * DAY, now + 1)


def timed(path: str, now: float, group: str | None) -> Callable[[int], float]:
    """``query_usage(group)``, or the reference query when ``group`` is None."""
    zone = resolve_zone("Europe/Paris")

    def time_func(loops: int) -> float:
        conn, plain, window = connections(path, now)
        started = time.perf_counter()
        for _ in range(loops):
            if group is None:
                plain.execute(REFERENCE_SQL, (window.start, window.end)).fetchall()
            else:
                query_usage(conn, group, window, zone)
        return time.perf_counter() - started

    return time_func


def name_of(group: str) -> str:
    return (
        DAILY
        if group == "daily"
        else f"usage {group}" + (" (runs table)" if group == "session" else "")
    )


def run_benchmarks(bench: CommandBench, env: dict[str, str]) -> None:
    """The same calls, in the same order, in the master and in every worker."""
    path, now = bench.state["db"], float(bench.state["now"])
    for group in GROUPS:
        bench.time_func(name_of(group), timed(path, now, group), env)
    bench.time_func(REFERENCE, timed(path, now, None), env)
    bench.command(STATUSLINE, [str(ASSISTANT), "monitor", "statusline"], env)
    bench.command(PASS, [str(PYTHON), "-c", "pass"], env)
    bench.command("monitor usage --json", [str(ASSISTANT), "monitor", "usage", "--json"], env)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the store")


def main() -> None:
    bench = CommandBench(__doc__, processes=3, values=2, add_arguments=add_arguments)
    if bench.is_worker:
        run_benchmarks(bench, {})
        return
    args = bench.args

    with tempfile.TemporaryDirectory(prefix="bench-usage-") as folder:
        data_dir = Path(folder) / "data"
        data_dir.mkdir()
        path = data_dir / "monitoring.db"
        built = build(path, args.runs)
        size_mb = path.stat().st_size / 1e6
        # The daily report and the reference count the same runs.
        conn, plain, window = connections(str(path), NOW)
        report = query_usage(conn, "daily", window, resolve_zone("Europe/Paris"))
        reference_rows = plain.execute(REFERENCE_SQL, (window.start, window.end)).fetchall()
        assert report.totals.runs == sum(row[3] for row in reference_rows) == args.runs
        env = command_env(ASSISTANT_DATA_DIR=str(data_dir))
        for argv in ([str(ASSISTANT), "monitor", "statusline"], [str(PYTHON), "-c", "pass"]):
            bench.check(argv, env)  # exits 0, and fills the bytecode cache
        usage = json.loads(bench.check([str(ASSISTANT), "monitor", "usage", "--json"], env).stdout)
        bench.share(db=str(path), now=NOW)
        run_benchmarks(bench, env)

    results = bench.results
    daily, reference = median(results[DAILY]), median(results[REFERENCE])
    ratio = daily / reference
    statusline = median(results[STATUSLINE])
    targets = {
        DAILY: Target(
            f"< 300 ms and <= 1.2x the plain GROUP BY ({ratio:.2f}x)", daily < 0.3 and ratio <= 1.2
        ),
        STATUSLINE: Target("< 60 ms", statusline < 0.06),
    }
    print()
    print(machine(list(results.values())))
    print(
        f"store: {args.runs:,} runs, {size_mb:.0f} MB (built in {built:.0f} s); "
        f"`monitor usage --json` checked once ({type(usage).__name__})"
    )
    in_process = {name_of(group): results[name_of(group)] for group in GROUPS}
    in_process[REFERENCE] = results[REFERENCE]
    derived = summary(in_process, REFERENCE, targets, title="in process, 30 days")
    commands = {name: results[name] for name in (PASS, STATUSLINE, "monitor usage --json")}
    derived |= summary(commands, PASS, targets, title="installed command, wall")
    bench.annotate(derived)
    print()
    print(f"daily report vs plain GROUP BY: {ratio:.2f}x (target <= 1.2x)")
    print(f"  < 300 ms: {verdict(daily < 0.3)}; <= 1.2x: {verdict(ratio <= 1.2)}")
    print(f"statusline < 60 ms: {verdict(statusline < 0.06)} ({statusline * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
