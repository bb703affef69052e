"""Usage reports over 1 million runs, and the statusline, against plain references.

Setup: a fresh ``monitoring.db`` (made by ``MetricsStore``, with every migration)
holding ``--runs`` (1,000,000) pipeline runs over the last 30 days, rows as wide as
the pipeline writes them (stage and classifier JSON), over four models of two
providers, 20,000 sessions, 100,000 conversations and ten repositories.

Measured, in the same run, each the median of ``--repeats`` (5) warm runs:

1. ours: ``query_usage`` for the 30-day daily report in Europe/Paris (local days,
   per provider and model underneath, cache savings priced; from the usage rollup),
   the model and repo reports (rollup too) and the session report (runs table);
2. the reference: the same sums by a plain ``GROUP BY date(started_at, 'unixepoch')``
   in the sqlite3 module, UTC days (it cannot do a time zone);
3. ``assistant monitor statusline`` wall time against ``python -c pass`` (the floor
   of any Python command), and ``assistant monitor usage --json`` wall time.

Targets (issue 13): the 30-day report < 300 ms in-process and <= 1.2x the plain
GROUP BY; the statusline < 60 ms wall.

Run: ``.venv/bin/python benchmarks/bench_usage.py [--runs N] [--repeats N] [--json]``
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ASSISTANT,
    PYTHON,
    dump_json,
    isolated_env,
    machine_info,
    median,
    print_machine,
    print_table,
    run_quiet,
    time_repeats,
    verdict,
)

from assistant_monitoring.metrics.pricing import PriceTable
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.usage.buckets import rebuild
from assistant_monitoring.usage.periods import Window
from assistant_monitoring.usage.report import query_usage
from assistant_monitoring.usage.zones import resolve_zone

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
REFERENCE = """
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    info = machine_info()
    if not args.json:
        print_machine(info)

    with tempfile.TemporaryDirectory(prefix="bench-usage-") as folder:
        data_dir = Path(folder) / "data"
        data_dir.mkdir()
        path = data_dir / "monitoring.db"
        built = build(path, args.runs)
        size_mb = path.stat().st_size / 1e6
        zone = resolve_zone("Europe/Paris")
        window = Window(NOW - 30 * DAY, NOW + 1)
        store = MetricsStore(path, read_only_ok=True)
        conn = store.connect()

        results: dict[str, list[float]] = {}
        for group in ("daily", "model", "repo", "session"):
            results[group] = time_repeats(
                lambda group=group: query_usage(conn, group, window, zone),  # type: ignore[misc]
                repeats=args.repeats,
            )
        plain = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        results["reference"] = time_repeats(
            lambda: plain.execute(REFERENCE, (window.start, window.end)).fetchall(),
            repeats=args.repeats,
        )
        report = query_usage(conn, "daily", window, zone)
        reference_rows = plain.execute(REFERENCE, (window.start, window.end)).fetchall()
        assert report.totals.runs == sum(row[3] for row in reference_rows) == args.runs
        plain.close()
        store.close()

        env = isolated_env(data_dir)
        results["statusline_wall"] = time_repeats(
            lambda: run_quiet([str(ASSISTANT), "monitor", "statusline"], env),
            repeats=args.repeats * 2,
        )
        results["python_pass_wall"] = time_repeats(
            lambda: run_quiet([str(PYTHON), "-c", "pass"], env), repeats=args.repeats * 2
        )
        results["usage_cli_wall"] = time_repeats(
            lambda: run_quiet([str(ASSISTANT), "monitor", "usage", "--json"], env),
            repeats=args.repeats,
        )

    medians = {name: median(values) for name, values in results.items()}
    ratio = medians["daily"] / medians["reference"]
    document = {
        "machine": info,
        "runs": args.runs,
        "build_seconds": round(built, 1),
        "store_mb": round(size_mb, 1),
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "daily_vs_plain_group_by": round(ratio, 2),
        "targets": {
            "daily_under_300ms": medians["daily"] < 0.3,
            "daily_within_1_2x": ratio <= 1.2,
            "statusline_under_60ms": medians["statusline_wall"] < 0.06,
        },
    }
    if args.json:
        dump_json(document)
        return 0
    print(f"store: {args.runs:,} runs, {size_mb:.0f} MB (built in {built:.0f} s)\n")
    print_table(
        ["measure", "median", "note"],
        [
            ["usage daily, 30 days, Europe/Paris", f"{medians['daily'] * 1000:.0f} ms", "ours"],
            ["usage model", f"{medians['model'] * 1000:.0f} ms", "ours"],
            ["usage repo", f"{medians['repo'] * 1000:.0f} ms", "ours"],
            ["usage session (runs table)", f"{medians['session'] * 1000:.0f} ms", "ours"],
            ["plain GROUP BY date() (UTC)", f"{medians['reference'] * 1000:.0f} ms", "reference"],
            ["statusline, wall", f"{medians['statusline_wall'] * 1000:.0f} ms", "ours"],
            ["python -c pass, wall", f"{medians['python_pass_wall'] * 1000:.0f} ms", "floor"],
            ["monitor usage --json, wall", f"{medians['usage_cli_wall'] * 1000:.0f} ms", "ours"],
        ],
    )
    print()
    print(f"daily report vs plain GROUP BY: {ratio:.2f}x (target <= 1.2x)")
    print(f"  < 300 ms: {verdict(medians['daily'] < 0.3)}; <= 1.2x: {verdict(ratio <= 1.2)}")
    print(f"statusline < 60 ms: {verdict(medians['statusline_wall'] < 0.06)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
