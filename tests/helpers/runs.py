"""Pipeline runs written into a test's store: large `/api/runs` answers to read.

Shared by the memory and the slow-reader tests of `monitor serve`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from assistant_monitoring.runs import RunRecord, RunStore, StageRecord

STAGES = ("receive", "classify", "retrieve", "generate", "send")


def seed_runs(data_dir: Path, count: int) -> None:
    """``count`` finished runs with every field a real one has (about 1.5 KB of JSON each)."""
    rng = random.Random(21)
    now = time.time()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(data_dir / "monitoring.db")
    try:
        for number in range(count):
            started = now - 3600 + number
            store.record(
                RunRecord(
                    id=f"run_{rng.getrandbits(64):016x}",
                    started_at=started,
                    finished_at=started + 1.5,
                    conversation_id=f"c_{rng.getrandbits(48):012x}",
                    message_id=f"m_{rng.getrandbits(48):012x}",
                    status="failure" if number % 10 == 0 else "success",
                    duration_ms=1500.0,
                    stages=[
                        StageRecord(stage, "success", index * 300.0, rng.random() * 300, None)
                        for index, stage in enumerate(STAGES)
                    ],
                    classifiers={
                        name: {"label": "question", "confidence": round(rng.random(), 3)}
                        for name in ("intent", "topic", "language")
                    },
                    provider="anthropic",
                    model="claude-haiku-4-5",
                    input_tokens=rng.randrange(100, 5000),
                    output_tokens=rng.randrange(10, 900),
                    cost_usd=round(rng.random() / 100, 6),
                    ttft_ms=rng.random() * 900,
                    error_type="TimeoutError" if number % 10 == 0 else None,
                    error_message="anthropic timed out after 30 s" if number % 10 == 0 else None,
                    session_id=f"s_{number // 50:08x}",
                    repo="assistant",
                    branch="main",
                    trace_id=f"{rng.getrandbits(128):032x}",
                    span_id=f"{rng.getrandbits(64):016x}",
                )
            )
    finally:
        store.close()
