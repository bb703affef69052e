"""``monitor serve``'s periodic job: health history, the alert rules, the event streams.

Every flush interval, in a worker thread (never on the event loop):

1. one process evaluates: it records the health report (so the dashboards have
   history even when nobody probes ``/health``) and applies the local alert rules.
   pm2 runs two ``monitor serve`` instances on one port so that a reload never stops
   answering (``ecosystem.config.js``); were both to evaluate, every alert would be
   notified twice. So the evaluator is whichever process holds an exclusive
   ``flock`` on ``monitoring.db.lock`` beside the store: the other tries again at
   every tick and takes over within one interval when the holder stops (the
   kernel releases the lock when a process ends, however it ends);
2. every process streams the transitions the alert book recorded since its last
   tick to its own ``/api/alerts/stream`` clients, whichever process recorded them.

A failure (a damaged store) is logged once, and its end once, not every few seconds
for as long as it lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import IO

from loguru import logger

from assistant_monitoring.alerts import AlertBook, evaluate_and_record
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.server.app import MonitorApp
from assistant_monitoring.server.shared import DaemonThreadPool
from assistant_monitoring.sqlitefile import present

_TICK_SECONDS = 0.2  # how often the loop looks at the clock and at `stopping`


class EvaluatorLock:
    """An exclusive, non-blocking ``flock``: held by at most one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._warned = False

    def try_acquire(self) -> bool:
        """Whether this process holds the lock now (taking it if it is free)."""
        if self._file is not None:
            return True
        handle: IO[bytes]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("ab")
        except OSError:
            try:  # a lock file left by another user (sudo): flock works read-only too
                handle = self.path.open("rb")
            except OSError as error:
                if not self._warned:
                    logger.warning(
                        f"cannot open {self.path} ({error.strerror}): this process does not "
                        "record health history nor evaluate the alert rules"
                    )
                self._warned = True
                return False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        with contextlib.suppress(OSError):  # who holds it, for an operator's `cat`
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n".encode())
            handle.flush()
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None


class _Evaluation:
    """What one tick does, in a worker thread; remembers how far the streams got."""

    def __init__(self, monitor: MonitorApp, lock: EvaluatorLock) -> None:
        self.monitor = monitor
        self.lock = lock
        self.streamed_until = time.time()  # earlier transitions are not replayed

    def __call__(self) -> list[tuple[str, object]]:
        settings = self.monitor.settings
        if self.lock.try_acquire():
            self.monitor.health_answer().result()
            evaluate_and_record(settings)
        if not present(settings.monitoring_db_path):
            return []
        store = MetricsStore(settings.monitoring_db_path, read_only_ok=True)
        try:
            changes = AlertBook(store).changes_since(self.streamed_until)
        finally:
            store.close()
        for _, alert in changes:
            self.streamed_until = max(
                self.streamed_until, alert.started_at, alert.resolved_at or 0.0
            )
        return list(changes)


async def run_periodic(monitor: MonitorApp) -> None:
    """The loop, until ``monitor.stopping``; the tick under way is let finish.

    The evaluation runs in a daemon thread of its own: if it is still running when the
    caller stops waiting, the process may exit without waiting for it.
    """
    path = monitor.settings.monitoring_db_path
    lock = EvaluatorLock(path.with_name(path.name + ".lock"))
    evaluation = _Evaluation(monitor, lock)
    worker = DaemonThreadPool(1, "periodic")
    current: asyncio.Future[list[tuple[str, object]]] | None = None
    interval = max(monitor.config.flush_interval, 1.0)
    last_problem = ""
    next_at = time.monotonic() + interval
    try:
        while not monitor.stopping.is_set():
            await asyncio.sleep(min(_TICK_SECONDS, max(0.0, next_at - time.monotonic())))
            # Answers past their time are dropped as requests come; a server that went
            # quiet after a burst lets them go here (up to 16 MiB otherwise kept).
            monitor.answers.sweep()
            if time.monotonic() < next_at:
                continue
            next_at = time.monotonic() + interval
            current = asyncio.wrap_future(worker.submit(evaluation))
            try:
                changes = await asyncio.shield(current)
            except Exception as error:
                if str(error) != last_problem:
                    logger.warning(f"periodic health and alert evaluation failed: {error}")
                last_problem = str(error)
                continue
            if last_problem:
                logger.info("periodic health and alert evaluation works again")
            last_problem = ""
            for event, alert in changes:
                monitor.alerts.publish(event, alert)
    finally:
        if current is None or current.done():
            lock.release()  # else the exit releases it, once the evaluation is over
        worker.shutdown(wait=False)
