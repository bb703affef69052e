"""The usage rollup: finished runs summed per 15 minutes, provider, model and repository.

Why: a 30-day report over a million runs summed straight from ``pipeline_runs``
takes ~2 s on this machine (bench_usage.py: the rows are wide, and SQLite's GROUP
BY costs ~1.3 us a row even with a covering index, 1.4 s). The rollup holds at most
96 rows a day per model and repository, so the same report reads a few thousand
rows. Fifteen minutes, because every time zone in use today is a whole number of
quarter hours from UTC: a local day, hour or month always starts on a bucket
boundary, so the rollup answers any zone exactly.

Kept in step by :meth:`RunStore.record`, in the transaction that writes the run: a
run is added when it is recorded with a final status (success, failure,
interrupted), and taken out again if a final run is ever recorded anew. A running
(or abandoned) run is not counted. Sessions and conversations are not in the rollup
(unbounded keys): those reports read the runs table. The rollup outlives the runs
(``KEEP_DAYS``), so monthly reports cover a year while runs are kept 30 days.

A module of its own, below the metrics store (which creates the table and backfills
it), the run store (which keeps it in step) and the usage reports (which read it).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from assistant_monitoring.statuses import FINAL_STATUSES, RunStatus

BUCKET_SECONDS = 900
KEEP_DAYS = 400  # a year of monthly reports, and then some
FINAL = FINAL_STATUSES

# The run columns the rollup sums, in the order of SUMS.
RUN_COLUMNS = (
    "started_at, status, coalesce(provider, ''), coalesce(model, ''), coalesce(repo, ''), "
    "input_tokens, output_tokens, reasoning_tokens, cache_read_tokens, cache_write_tokens, "
    "cache_write_1h_tokens, cost_usd"
)
SUMS = (
    "runs",
    "errors",
    "interrupted",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
    "priced_runs",
    "unpriced_runs",
    "token_runs",
)
# A run's billed tokens (reasoning is inside output): > 0 means it used the model.
BILLED_TOKENS = (
    "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens"
)
_KEY = "bucket, provider, model, repo"
_UPSERT = (
    f"INSERT INTO usage_buckets ({_KEY}, {', '.join(SUMS)}, first, last) "
    f"VALUES ({', '.join('?' * (4 + len(SUMS) + 2))}) "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET "
    + ", ".join(f"{name} = {name} + excluded.{name}" for name in SUMS)
    + ", first = min(first, excluded.first), last = max(last, excluded.last)"
)
# The migration's backfill, and rebuild(): the same sums straight from the runs.
REBUILD = f"""INSERT INTO usage_buckets ({_KEY}, {", ".join(SUMS)}, first, last)
    SELECT CAST(started_at / {BUCKET_SECONDS} AS INTEGER) * {BUCKET_SECONDS},
        coalesce(provider, ''), coalesce(model, ''), coalesce(repo, ''),
        count(*), sum(status = 'failure'), sum(status = 'interrupted'),
        sum(input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cache_read_tokens),
        sum(cache_write_tokens), sum(cache_write_1h_tokens), total(cost_usd),
        sum(cost_usd IS NOT NULL), sum(cost_usd IS NULL AND {BILLED_TOKENS} > 0),
        sum({BILLED_TOKENS} > 0), min(started_at), max(started_at)
    FROM pipeline_runs WHERE status IN ('success', 'failure', 'interrupted')
    GROUP BY 1, 2, 3, 4"""


def bucket_of(when: float) -> int:
    """The start of the 15-minute bucket holding ``when``."""
    return int(when // BUCKET_SECONDS) * BUCKET_SECONDS


def _row(values: tuple[Any, ...], sign: int) -> list[Any]:
    started, status, provider, model, repo, *tokens, cost = values
    used = sum(tokens) - tokens[2]  # tokens[2] is reasoning: part of output already
    figures = [
        1,
        int(status == RunStatus.FAILURE),
        int(status == RunStatus.INTERRUPTED),
        *tokens,
        cost or 0.0,
        int(cost is not None),
        int(cost is None and used > 0),
        int(used > 0),
    ]
    return [
        bucket_of(started),
        provider,
        model,
        repo,
        *(sign * figure for figure in figures),
        started,
        started,
    ]


def account(conn: sqlite3.Connection, run_id: str, write_run: Any) -> None:
    """Write the run (``write_run()``, inside the caller's transaction) and keep the
    rollup in step: take out its previous final record, add its new one."""
    select = f"SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = ?"
    before = conn.execute(select, (run_id,)).fetchone()
    write_run()
    after = conn.execute(select, (run_id,)).fetchone()
    if before is not None and before[1] in FINAL:
        conn.execute(_UPSERT, _row(before, -1))
    if after is not None and after[1] in FINAL:
        conn.execute(_UPSERT, _row(after, +1))


def rebuild(conn: sqlite3.Connection) -> None:
    """Recompute the rollup from the runs table (inside the caller's transaction)."""
    conn.execute("DELETE FROM usage_buckets")
    conn.execute(REBUILD)
