"""The single-flight answer cache behind `monitor serve`'s /api/*, /metrics and /health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

from assistant_monitoring.server.shared import SharedAnswers


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
