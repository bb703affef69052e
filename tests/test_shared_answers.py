"""The single-flight answer cache behind `monitor serve`'s /api/*, /metrics and /health."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

from assistant_monitoring.server.shared import DaemonThreadPool, SharedAnswers


class InlineExecutor(Executor):
    """Runs each computation at once, in the caller: a computation quicker than us."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


@pytest.mark.timeout(10)
def test_a_computation_finished_before_its_callback_is_added_does_not_deadlock() -> None:
    answers: SharedAnswers[int] = SharedAnswers(InlineExecutor(), ttl=0.05)
    assert answers.get("k", lambda: 1).result(timeout=1) == 1
    time.sleep(0.06)
    # Past the ttl it is computed again, not stuck on the first answer.
    assert answers.get("k", lambda: 2).result(timeout=1) == 2
    assert answers.computations == 2


def test_concurrent_requests_share_one_computation() -> None:
    release = threading.Event()
    calls = 0

    def slow() -> int:
        nonlocal calls
        calls += 1
        release.wait(5)
        return 42

    with ThreadPoolExecutor(4) as executor:
        answers: SharedAnswers[int] = SharedAnswers(executor, ttl=10)
        futures = [answers.get(("/api/runs", ()), slow) for _ in range(50)]
        release.set()
        assert {f.result(timeout=5) for f in futures} == {42}
    assert calls == 1


def test_stale_answers_are_served_while_one_recomputes_then_never_older() -> None:
    with ThreadPoolExecutor(2) as executor:
        answers: SharedAnswers[str] = SharedAnswers(executor, ttl=0.1, stale=0.3)
        assert answers.get("k", lambda: "old").result(timeout=5) == "old"
        time.sleep(0.15)  # past the ttl, within the stale window
        release = threading.Event()

        def new() -> str:
            release.wait(5)
            return "new"

        assert answers.get("k", new).result(timeout=0) == "old"  # no wait
        release.set()
        time.sleep(0.05)
        assert answers.get("k", lambda: "unused").result(timeout=5) == "new"
        time.sleep(0.5)  # past ttl + stale: the caller waits for a fresh answer
        blocked = threading.Event()

        def fresh() -> str:
            blocked.wait(5)
            return "fresh"

        future = answers.get("k", fresh)
        assert not future.done()
        blocked.set()
        assert future.result(timeout=5) == "fresh"


def test_errors_are_shared_for_the_ttl_too() -> None:
    calls = 0

    def broken() -> int:
        nonlocal calls
        calls += 1
        raise ValueError("damaged store")

    answers: SharedAnswers[int] = SharedAnswers(InlineExecutor(), ttl=10)
    for _ in range(5):
        with pytest.raises(ValueError, match="damaged store"):
            answers.get("k", broken).result(timeout=1)
    assert calls == 1


# -- memory (issue 21): answers expire, and what is kept is bounded in bytes ---------


class Blob:
    """An answer of a stated size; a weak reference tells whether the cache keeps it."""

    def __init__(self, size: int) -> None:
        self.size = size


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def blob_of(size: int) -> Callable[[], Blob]:
    return lambda: Blob(size)


def kept(refs: dict[Any, weakref.ref[Blob]]) -> set[Any]:
    gc.collect()
    return {key for key, ref in refs.items() if ref() is not None}


def test_answers_are_dropped_once_older_than_ttl_plus_stale() -> None:
    # The old cache kept the last 256 keys for ever, however old their answers were.
    answers: SharedAnswers[Blob] = SharedAnswers(InlineExecutor(), ttl=0.05, stale=0.05)
    refs = {key: weakref.ref(answers.get(key, blob_of(100)).result()) for key in range(50)}
    assert kept(refs) == set(range(50))
    time.sleep(0.15)
    answers.get("another", blob_of(100))  # each get drops what has expired
    assert kept(refs) == set()


def test_expiry_follows_when_answers_finished_not_when_they_were_asked() -> None:
    clock = Clock()
    answers: SharedAnswers[Blob] = SharedAnswers(InlineExecutor(), ttl=1, stale=1, clock=clock)
    refs = {"a": weakref.ref(answers.get("a", blob_of(10)).result())}
    clock.now += 1.0
    refs["b"] = weakref.ref(answers.get("b", blob_of(10)).result())
    clock.now += 0.5
    assert answers.get("a", blob_of(10)).done()  # stale, served, and recomputed...
    assert answers.computations == 3
    refs["a2"] = weakref.ref(answers.get("a", blob_of(10)).result())
    clock.now += 1.6  # b is 2.1 s old, the new a 1.6 s
    answers.sweep()
    assert kept(refs) == {"a2"}
    assert len(answers) == 1


def test_a_quiet_server_forgets_everything_on_its_next_request() -> None:
    clock = Clock()
    answers: SharedAnswers[Blob] = SharedAnswers(
        InlineExecutor(), ttl=1, stale=1, clock=clock, weigh=lambda blob: blob.size
    )
    for key in range(100):
        answers.get(key, blob_of(1000))
    assert answers.kept_bytes > 100 * 1000
    clock.now += 2.0
    answers.get("probe", blob_of(1))
    assert len(answers) == 1
    assert 0 < answers.kept_bytes < 4096


def test_what_is_kept_is_bounded_in_bytes_least_recently_asked_first() -> None:
    budget = 1_000_000
    answers: SharedAnswers[Blob] = SharedAnswers(
        InlineExecutor(), ttl=60, stale=60, budget=budget, weigh=lambda blob: blob.size
    )
    refs: dict[Any, weakref.ref[Blob]] = {}
    for key in range(30):
        refs[key] = weakref.ref(answers.get(key, blob_of(100_000)).result())
        assert answers.kept_bytes <= budget
    # Each weighs 100,000 bytes plus its key and bookkeeping: nine fit in 1,000,000.
    assert kept(refs) == set(range(21, 30))
    assert len(answers) == 9
    # Asked again, 21 becomes the most recent: 22 is the next to go, not 21.
    assert answers.get(21, blob_of(100_000)).result() is refs[21]()
    refs[30] = weakref.ref(answers.get(30, blob_of(100_000)).result())
    assert kept(refs) == {21, *range(23, 31)}
    assert answers.computations == 31


def test_an_oversize_answer_reaches_every_waiting_request_but_is_not_kept() -> None:
    release = threading.Event()

    def huge() -> Blob:
        release.wait(5)
        return Blob(300_000)

    with ThreadPoolExecutor(4) as executor:
        answers: SharedAnswers[Blob] = SharedAnswers(
            executor, ttl=60, budget=1_000_000, weigh=lambda blob: blob.size
        )
        small = answers.get("small", blob_of(1000)).result(timeout=5)
        futures = [answers.get("huge", huge) for _ in range(50)]
        assert answers.computations == 2  # single flight: one computation for the 50
        release.set()
        results = {id(future.result(timeout=5)) for future in futures}
        assert len(results) == 1
        # Over a quarter of the budget: given, then forgotten; the small one stays.
        futures = []
        gc.collect()
        assert len(answers) == 1
        assert answers.get("small", blob_of(1000)).result(timeout=5) is small
        answers.get("huge", huge).result(timeout=5)
        assert answers.computations == 3


def test_a_computation_under_way_is_never_forgotten_whatever_the_budget() -> None:
    clock = Clock()
    release = threading.Event()
    calls = 0

    def slow() -> Blob:
        nonlocal calls
        calls += 1
        release.wait(5)
        return Blob(1000)

    with ThreadPoolExecutor(4) as executor:
        answers: SharedAnswers[Blob] = SharedAnswers(
            executor, ttl=1, stale=1, budget=50_000, clock=clock, weigh=lambda blob: blob.size
        )
        first = answers.get("slow", slow)
        # Many other answers come and go (evicted, expired) while it computes.
        for key in range(100):
            answers.get(key, blob_of(10_000)).result(timeout=5)
            clock.now += 0.5
        assert answers.get("slow", slow) is first
        release.set()
        assert first.result(timeout=5).size == 1000
    assert calls == 1


def test_a_stale_answer_expiring_during_its_recomputation_keeps_single_flight() -> None:
    clock = Clock()
    release = threading.Event()
    with ThreadPoolExecutor(2) as executor:
        answers: SharedAnswers[str] = SharedAnswers(executor, ttl=1, stale=1, clock=clock)
        assert answers.get("k", lambda: "old").result(timeout=5) == "old"
        clock.now += 1.5

        def new() -> str:
            release.wait(5)
            return "new"

        assert answers.get("k", new).result(timeout=0) == "old"
        clock.now += 1.0  # the old answer has expired, the new one is not there yet
        waiting = [answers.get("k", lambda: "second computation") for _ in range(10)]
        assert len({id(future) for future in waiting}) == 1
        assert not waiting[0].done()
        release.set()
        assert waiting[0].result(timeout=5) == "new"
        time.sleep(0.05)
        assert answers.get("k", lambda: "unused").result(timeout=5) == "new"
        assert answers.computations == 2


def test_errors_and_cancelled_computations_are_weighed_or_not_kept() -> None:
    answers: SharedAnswers[int] = SharedAnswers(InlineExecutor(), ttl=60, budget=1_000_000)

    def broken() -> int:
        raise ValueError("damaged store")

    for key in range(1000):
        with pytest.raises(ValueError, match="damaged store"):
            answers.get(key, broken).result(timeout=1)
        assert answers.kept_bytes <= 1_000_000
    assert 100 < len(answers) < 1000  # each error counts for kilobytes, not nothing

    cancelled: Future[int] = Future()
    cancelled.cancel()

    class Cancelling(Executor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            return cancelled

    shut: SharedAnswers[int] = SharedAnswers(Cancelling(), ttl=60)
    assert shut.get("k", lambda: 1).cancelled()
    assert len(shut) == 0  # a pool shut down does not leave its cancellations behind


def test_under_concurrent_load_the_books_balance() -> None:
    clock = Clock()
    budget = 200_000
    with ThreadPoolExecutor(4) as executor:
        answers: SharedAnswers[Blob] = SharedAnswers(
            executor, ttl=1, stale=1, budget=budget, clock=clock, weigh=lambda blob: blob.size
        )

        def client(number: int) -> None:
            for request in range(300):
                key = (number * 7 + request) % 97
                answers.get(key, blob_of(1000 * (key % 60))).result(timeout=5)
                assert answers.kept_bytes <= budget
                if request % 50 == 0:
                    clock.now += 0.3

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    clock.now += 2.0
    answers.sweep()
    assert (len(answers), answers.kept_bytes) == (0, 0)


def test_an_idle_worker_does_not_keep_its_last_answer_alive() -> None:
    pool = DaemonThreadPool(2, "test-answers")
    try:
        future = pool.submit(blob_of(1_500_000))
        answer = weakref.ref(future.result(timeout=5))
        del future
        deadline = time.monotonic() + 5
        while kept({"answer": answer}) and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker may still be between its callback and `del`
        assert answer() is None, "expired answers would stay resident, one per worker"
    finally:
        pool.shutdown()
