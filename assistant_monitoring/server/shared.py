"""Answers computed at most once per interval and shared by every concurrent request.

``monitor serve`` answers ``/api/*``, ``/metrics``, ``/ready`` and ``/health`` from
SQLite. Under 50 keep-alive connections the standard-library server computed every
request's answer again (``/api/metrics`` 131 req/s at 365 ms mean latency); here
each answer (per path and parameters) is computed by one worker thread, off the
event loop, at most once per ``ttl`` seconds, and every request that arrives
meanwhile shares it (single flight).

``stale`` seconds past its ``ttl`` an answer may still be served while its
replacement is being computed, so that under load no request waits for a
recomputation (the p99 would otherwise be the computation's time once a second).
Past ``ttl + stale`` a request waits for the fresh answer: an idle server never
answers with old data. ``/health`` uses ``stale=0`` (its answer decides deploys).

Errors are answers too (a ``UsageError`` for a bad parameter, a damaged store):
shared for the same ``ttl``, so a flood of bad requests costs one computation a
second, not one each.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_MAX_KEYS = 256  # distinct (path, parameters) kept; the least recently used goes first


@dataclass
class _Entry(Generic[T]):
    answer: Future[T] | None = None  # the last finished computation
    at: float = 0.0  # when it finished (monotonic)
    pending: Future[T] | None = None  # the computation under way, if any


class SharedAnswers(Generic[T]):
    """A single-flight cache of finished computations, keyed by what was asked."""

    def __init__(self, executor: Executor, *, ttl: float, stale: float = 0.0) -> None:
        self._executor = executor
        self._ttl = ttl
        self._stale = stale
        self._lock = threading.RLock()
        self._entries: OrderedDict[Hashable, _Entry[T]] = OrderedDict()
        self.computations = 0  # how many times anything was computed (for tests and logs)

    def get(self, key: Hashable, compute: Callable[[], T]) -> Future[T]:
        """A future of the answer for ``key``: done at once when a recent one exists."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                if len(self._entries) > _MAX_KEYS:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            age = time.monotonic() - entry.at
            if entry.answer is not None and age < self._ttl:
                return entry.answer
            pending = entry.pending or self._start(entry, compute)
            if entry.answer is not None and age < self._ttl + self._stale:
                return entry.answer
            return pending

    def _start(self, entry: _Entry[T], compute: Callable[[], T]) -> Future[T]:
        self.computations += 1
        pending = self._executor.submit(compute)
        entry.pending = pending

        def finished(done: Future[T]) -> None:
            # Runs in the worker thread, or here at once (under our own lock, hence the
            # RLock) when the computation finished before the callback was added.
            with self._lock:
                entry.answer = done
                entry.at = time.monotonic()
                if entry.pending is done:
                    entry.pending = None

        pending.add_done_callback(finished)
        return pending


class DaemonThreadPool(Executor):
    """A fixed pool of daemon threads: a computation under way never holds up the exit.

    concurrent.futures' ThreadPoolExecutor (and asyncio's default executor) join their
    threads when the interpreter exits: one computation waiting on a locked database,
    a slow LLM or a webhook would keep a server that was told to stop alive past
    pm2's kill timeout, and SIGKILL would lose its last metrics flush.
    """

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True)
            for number in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("the pool is shut down")
        future: Future[T] = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            future, fn, args, kwargs = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            with contextlib.suppress(queue.Empty):
                while (work := self._queue.get_nowait()) is not None:
                    work[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
