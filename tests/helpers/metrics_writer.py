"""Child process for the multi-process store test: record and flush for a while.

Usage: python -m tests.helpers.metrics_writer DB SECONDS FLUSH_INTERVAL RESULT_FILE
Records pipeline runs as fast as it can, flushing every FLUSH_INTERVAL seconds; at
the end (or on SIGTERM) writes how many it recorded to RESULT_FILE, and the runtime's
exit hook flushes the rest.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from assistant_monitoring.metrics.runtime import start_metrics


def main() -> None:
    db, seconds, interval, result = sys.argv[1:5]
    runtime = start_metrics(Path(db), flush_interval=float(interval))
    metrics = runtime.instrumentation.metrics
    recorded = 0
    deadline = time.monotonic() + float(seconds)
    both = {signal.SIGTERM}
    try:
        while time.monotonic() < deadline:
            # SIGTERM waits while one run is recorded and counted, so the count we
            # report is exactly what the registry holds.
            signal.pthread_sigmask(signal.SIG_BLOCK, both)
            metrics.pipeline_runs.labels("success").inc()
            metrics.pipeline_duration.observe(0.001 * (recorded % 1000 + 1))
            metrics.llm_tokens.labels("anthropic", "m", "input").inc(3)
            recorded += 1
            signal.pthread_sigmask(signal.SIG_UNBLOCK, both)
            if recorded % 200 == 0:
                time.sleep(0.001)  # let the flush thread and other processes in
    finally:
        Path(result).write_text(str(recorded))


if __name__ == "__main__":
    main()
