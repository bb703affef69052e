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

Memory (issue 21). The cache used to keep the 256 most recently asked keys, each
for ever: 300 distinct ``/api/runs?limit=1000`` queries (1.5 to 1.75 MB each) took
the server from 45 MB to 536 MB, past the systemd unit's ``MemoryMax=400M``. Now:

* an answer is dropped ``ttl + stale`` seconds after it was computed: it could never
  be served later than that anyway. The entries are also kept in the order they
  finished, so dropping the expired ones is popping from the front of that order,
  done by every :meth:`SharedAnswers.get` and every finished computation (amortised
  constant time, never a scan of the cache); :meth:`SharedAnswers.sweep` does it
  on demand (a server that goes quiet keeps what it had until its next request,
  at most the budget);
* the answers kept weigh at most ``budget`` bytes (the body, the key, and
  ``_ENTRY_BYTES`` for the future and the bookkeeping; an error counts
  ``_ERROR_BYTES``): past it, the least recently asked answer goes first;
* an answer heavier than ``largest`` (a quarter of the budget unless told) is given
  to every request that waited for it, then not kept: the next request computes it
  again. So one huge answer cannot empty the cache of everything else.

A key whose computation is under way is never forgotten (only the answer it had
before is), so single flight holds whatever the budget: every request for it gets
the computation's future until it finishes.

Why ``DEFAULT_BUDGET_BYTES`` is 16 MiB: answers live ``ttl + stale`` (2 s for
``/api/*``), so the cache only has to hold what is asked within two seconds. The
largest answer the API gives, ``/api/runs?limit=1000``, is 1.5 to 1.75 MB: 16 MiB
keeps about nine of them (and ``largest``, 4 MiB, still keeps it), or thousands of
the few-KB answers a dashboard polls, and adds at most 16 MiB to a server whose
resident set is 55 to 85 MB idle (``monitor serve`` has three caches: the two of
``/health`` and ``/ready`` keep one small answer each). Without the budget the
expiry alone would bound the cache only by how fast the workers compute (four
workers on a fast machine build tens of megabytes of answers in two seconds).

So the resident set stays under idle + 16 MiB (the cache) + what the answers under
way take while they are built (about 9 MB for one 1.5 MB ``/api/runs`` answer: the
runs, the document, its JSON text, its bytes; one per worker) + what the allocator
keeps of freed memory. Measured on 2 cores with 1,000 distinct
``/api/runs?limit=1000&since=…`` queries from 4 clients (1.5 MB answers): 81 MB idle,
122 MB at the peak, 103 MB once the answers had expired (1.26 times idle; the
allocator keeps the difference: glibc's ``malloc_trim`` gives it back, measured in
process; we do not call it). ``tests/test_serve_memory.py`` checks the 1.5 times
with 300 KB answers.

A worker thread of :class:`DaemonThreadPool` does not keep its last computation
(future, and through it the answer) while it waits for the next one: four idle
workers held four expired 1.5 MB answers (6 MB of objects; 5 to 17 MB more resident
after the loads above).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_BUDGET_BYTES = 16 * 1024 * 1024  # the answers kept, per cache (see above)
# What an entry costs besides its answer and key: the Future (its Condition, lock and
# lists), the callback, the entry and its places in the dicts. tracemalloc measures
# about 1.9 KiB (2,000 entries of a 100-byte answer took 2,285 bytes each, key and
# answer included).
_ENTRY_BYTES = 2048
# An error counts this much (the exception, its traceback and the frames it holds):
# tracemalloc measures about 2.9 KiB for a UsageError from a bad ``since``.
_ERROR_BYTES = 4096
_MAX_DEPTH = 4  # how deep `object_bytes` looks into tuples


def object_bytes(value: object, depth: int = 0) -> int:
    """What ``value`` holds, in bytes: ``sys.getsizeof``, through tuples, lists and
    dicts (the answers here are ``(status, body, content type)``, the keys tuples of
    strings), a few levels deep."""
    size = sys.getsizeof(value)
    if depth >= _MAX_DEPTH:
        return size
    if isinstance(value, tuple | list | frozenset | set):
        return size + sum(object_bytes(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return size + sum(
            object_bytes(k, depth + 1) + object_bytes(v, depth + 1) for k, v in value.items()
        )
    return size


@dataclass(eq=False)
class _Entry(Generic[T]):
    key: Hashable
    answer: Future[T] | None = None  # the last finished computation, when kept
    at: float = 0.0  # when it finished (monotonic)
    weight: int = 0  # what `answer` and the key weigh (0 when none is kept)
    pending: Future[T] | None = None  # the computation under way, if any


class SharedAnswers(Generic[T]):
    """A single-flight cache of finished computations, keyed by what was asked,
    bounded in time (``ttl + stale``) and in bytes (``budget``)."""

    def __init__(
        self,
        executor: Executor,
        *,
        ttl: float,
        stale: float = 0.0,
        budget: int = DEFAULT_BUDGET_BYTES,
        largest: int | None = None,
        weigh: Callable[[T], int] = object_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget < 0 or ttl < 0 or stale < 0:
            raise ValueError("ttl, stale and budget cannot be negative")
        self._executor = executor
        self._ttl = ttl
        self._stale = stale
        self._budget = budget
        self._largest = budget // 4 if largest is None else min(largest, budget)
        self._weigh = weigh
        self._clock = clock
        self._lock = threading.RLock()
        # Every key asked whose answer is kept or whose computation is under way.
        self._entries: dict[Hashable, _Entry[T]] = {}
        # The keys with a kept answer: least recently asked first, and oldest first.
        self._recent: OrderedDict[Hashable, None] = OrderedDict()
        self._finished: OrderedDict[Hashable, None] = OrderedDict()
        self._bytes = 0
        self.computations = 0  # how many times anything was computed (for tests and logs)

    @property
    def kept_bytes(self) -> int:
        """What the kept answers weigh (at most the budget)."""
        return self._bytes

    def __len__(self) -> int:
        """How many keys have an answer kept or a computation under way."""
        return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], T]) -> Future[T]:
        """A future of the answer for ``key``: done at once when a recent one exists."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(key)
            elif entry.answer is not None:
                self._recent.move_to_end(key)
                if now - entry.at < self._ttl:
                    return entry.answer
            pending = entry.pending or self._start(entry, compute)
            # Expired answers are gone: one still here is within ttl + stale.
            return entry.answer if entry.answer is not None else pending

    def sweep(self) -> None:
        """Drop every answer older than ``ttl + stale`` now (get() does it as it goes)."""
        with self._lock:
            self._expire(self._clock())

    def _expire(self, now: float) -> None:
        lifetime = self._ttl + self._stale
        while self._finished:
            key = next(iter(self._finished))
            entry = self._entries[key]
            if now - entry.at < lifetime:
                return
            self._drop_answer(entry)

    def _drop_answer(self, entry: _Entry[T]) -> None:
        """Forget ``entry``'s kept answer; the entry too unless it is being computed."""
        if entry.answer is not None:
            entry.answer = None
            self._bytes -= entry.weight
            entry.weight = 0
            del self._recent[entry.key]
            del self._finished[entry.key]
        if entry.pending is None:
            del self._entries[entry.key]

    def _start(self, entry: _Entry[T], compute: Callable[[], T]) -> Future[T]:
        self.computations += 1
        pending = self._executor.submit(compute)
        entry.pending = pending

        def finished(done: Future[T]) -> None:
            # Runs in the worker thread, or here at once (under our own lock, hence the
            # RLock) when the computation finished before the callback was added.
            with self._lock:
                if entry.pending is done:
                    entry.pending = None
                self._keep(entry, done)

        pending.add_done_callback(finished)
        return pending

    def _keep(self, entry: _Entry[T], done: Future[T]) -> None:
        """Keep ``done`` as ``entry``'s answer if it fits, the least recent ones making
        room; the waiting requests have it either way."""
        weight = self._weight(entry.key, done)
        # The answer it had (stale now) is replaced, by this one or by nothing.
        self._drop_answer(entry)
        now = self._clock()
        self._expire(now)
        if weight is None or weight > self._largest:
            return
        if entry.pending is None:  # _drop_answer forgot it: it is kept again
            self._entries[entry.key] = entry
        entry.answer, entry.at, entry.weight = done, now, weight
        self._recent[entry.key] = None
        self._finished[entry.key] = None
        self._bytes += weight
        while self._bytes > self._budget:
            self._drop_answer(self._entries[next(iter(self._recent))])

    def _weight(self, key: Hashable, done: Future[T]) -> int | None:
        """What keeping ``done`` costs, or None when it is not to be kept (cancelled,
        or its size cannot be told)."""
        if done.cancelled():
            return None
        try:
            error = done.exception()
            answer = _ERROR_BYTES if error is not None else self._weigh(done.result())
        except Exception:
            return None
        return answer + object_bytes(key) + _ENTRY_BYTES


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
            self._run(*work)
            # Not kept while the thread waits for the next one: through its future,
            # `work` holds the answer, which would outlive its expiry (four idle
            # workers held their last 1.5 MB /api/runs answer each).
            del work

    @staticmethod
    def _run(future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if not future.set_running_or_notify_cancel():
            return
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
