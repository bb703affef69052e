"""Child process for the multi-process logging test: write N numbered lines.

Usage: python -m tests.helpers.log_writer LOG_DIR WORKER LINES MAX_BYTES MAX_FILES START_AT
Waits until the wall clock reaches START_AT so all workers write at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from loguru import logger

from assistant_monitoring.logs import configure_logging


def main() -> None:
    log_dir, worker, lines, max_bytes, max_files, start_at = sys.argv[1:7]
    configure_logging(
        log_dir=Path(log_dir),
        level="INFO",
        console_level="CRITICAL",
        environment="test",
        version="0",
        max_bytes=int(max_bytes),
        max_files=int(max_files),
        color=False,
    )
    bound = logger.bind(worker=int(worker))
    while time.time() < float(start_at):
        time.sleep(0.001)
    padding = "x" * (int(worker) * 37 % 200)  # lines of different lengths
    for seq in range(int(lines)):
        bound.info("line {} {}", seq, padding, seq=seq)


if __name__ == "__main__":
    main()
