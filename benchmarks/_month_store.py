"""A private copy of the 30-day store of ``bench_metrics_query.py``, for two more benchmarks.

Not a benchmark itself. ``bench_serve_load.py`` and ``bench_dashboard.py`` run on the
same ``monitoring.db`` as ``bench_metrics_query.py``: 100 series, 30 days of activity
written through the real ``MetricsStore`` (see that script's docstring). This module
reuses its cached template under ``benchmarks/.data/metrics-query/template`` (built on
first use, about a minute), copies it into a directory of the caller's choosing
(never the template or ``bench_metrics_query.py``'s own run directory), moves it to
today and tops it up to the current minute with real minute flushes, exactly as
``bench_metrics_query.prepare_run`` does. It can also add pipeline run records (the
``pipeline_runs`` table ``monitor runs`` and the dashboards read) through the real
``RunStore``, and create ``assistant.db`` with ``assistant db migrate`` so that the
database health check is healthy.
"""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import ASSISTANT
from _metrics_workload import CLASSIFIERS, MODELS, SERIES_COUNT, STAGES
from bench_metrics_query import (
    DAYS,
    SEED,
    TEMPLATE,
    Clock,
    Writer,
    runs_per_minute,
    shift,
    store_facts,
    template_meta,
)

from assistant_monitoring.metrics.store import DAY, MINUTE, MetricsStore

__all__ = ["DAYS", "SERIES_COUNT", "migrate_database", "prepare_month_store", "seed_runs"]


def prepare_month_store(data_dir: Path, *, top_up: bool = True) -> dict[str, Any]:
    """Put a copy of the 30-day store at ``data_dir/monitoring.db``, moved to today.

    With ``top_up`` the minutes since today's UTC midnight are written with real
    minute flushes (up to ~1,440 of them, 5 to 40 s), so that "the last hour" is
    full; without it the store ends at today's midnight. Retention runs at the
    current minute either way, so the first retention pass of a server started on
    it has (almost) nothing left to delete.
    """
    started = time.perf_counter()
    meta, built = template_meta(False)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "monitoring.db"
    shutil.copyfile(TEMPLATE, path)
    now = time.time()
    today = math.floor(now / DAY) * DAY
    days = (today - int(meta["anchor"])) // DAY
    if days:
        shift(path, days * DAY)
    last_minute = math.floor(now / MINUTE) * MINUTE
    flushes = 0
    if top_up:
        writer = Writer(path, Clock(today), SEED + today)
        minute = today
        while minute < last_minute:
            writer.period(minute, 1)
            minute += MINUTE
        writer.store.apply_retention(last_minute, budget=3600.0)
        flushes = writer.flushes
        writer.close()
    else:
        store = MetricsStore(path, clock=Clock(last_minute))
        try:
            store.apply_retention(last_minute, budget=3600.0)
        finally:
            store.close()
    facts = store_facts(path)
    return {
        "template": meta,
        "template_built_now": built,
        "shifted_days": days,
        "top_up_minute_flushes": flushes,
        "data_until": last_minute if top_up else today,
        "prepare_seconds": round(time.perf_counter() - started, 1),
        "store": facts,
    }


def seed_runs(data_dir: Path, *, hours: float = 24.0, seed: int = 7) -> dict[str, int]:
    """Record the last ``hours`` of pipeline runs (~2 a minute by day, 3% failed).

    Written through ``RunStore.record`` (one transaction per run, as the pipeline
    does), so the dashboard's "recent failed runs" panel reads real rows.
    """
    from assistant_monitoring.runs import RunRecord, RunStore, StageRecord

    rng = random.Random(seed)
    store = RunStore(data_dir / "monitoring.db")
    now = time.time()
    at = now - hours * 3600
    written = failed = 0
    try:
        while at < now:
            at += rng.expovariate(runs_per_minute(at) / 60)
            if at >= now:
                break
            is_failed = rng.random() < 0.03
            failing = rng.choices(STAGES, (1, 2, 1, 6, 1))[0] if is_failed else None
            provider, model, _ = rng.choices(MODELS, [w for _, _, w in MODELS])[0]
            stages: list[StageRecord] = []
            offset = 0.0
            for stage in STAGES:
                seconds = rng.lognormvariate(0.3 if stage == "generate" else -3.0, 0.6)
                stages.append(
                    StageRecord(
                        name=stage,
                        status="failure" if stage == failing else "success",
                        started_ms=offset * 1000,
                        duration_ms=seconds * 1000,
                        error_type="TimeoutError" if stage == failing else None,
                    )
                )
                offset += seconds
                if stage == failing:
                    break
            store.record(
                RunRecord(
                    id=f"run_{rng.getrandbits(64):016x}",
                    started_at=at,
                    finished_at=at + offset,
                    conversation_id=f"c_{rng.getrandbits(48):012x}",
                    message_id=f"m_{rng.getrandbits(48):012x}",
                    status="failure" if is_failed else "success",
                    duration_ms=offset * 1000,
                    stages=stages,
                    classifiers={
                        name: {"label": "question", "confidence": round(rng.random(), 3)}
                        for name in CLASSIFIERS
                    },
                    provider=provider,
                    model=model,
                    input_tokens=int(rng.lognormvariate(7.0, 0.8)),
                    output_tokens=int(rng.lognormvariate(5.5, 0.7)),
                    cost_usd=round(rng.random() / 100, 6),
                    retries=1 if rng.random() < 0.02 else 0,
                    ttft_ms=rng.lognormvariate(-1.0, 0.5) * 1000,
                    failed_stage=failing,
                    error_type="TimeoutError" if is_failed else None,
                    error_message=f"{provider} timed out after 30 s" if is_failed else None,
                )
            )
            written += 1
            failed += is_failed
    finally:
        store.close()
    return {"runs": written, "failed": failed}


def migrate_database(env: Mapping[str, str]) -> None:
    """Create ``assistant.db`` (``assistant db migrate``) so the database check is healthy."""
    done = subprocess.run(
        [str(ASSISTANT), "db", "migrate"],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"assistant db migrate: exit {done.returncode}: {done.stderr[-500:]}")
