"""The connection guard's bookkeeping, in process (server/guard.py).

Who gives way to a newcomer when the places are full, the reserve's loop-iteration
rule, the descriptor budget, and the one-line-a-minute summary. The same rules under
real floods, as whole processes at ``ulimit -n 1024``: tests/test_serve_limits.py.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import pytest

from assistant_monitoring.server import guard
from assistant_monitoring.server.guard import (
    GENERAL,
    RESERVE,
    RESERVE_CONNECTIONS,
    ConnectionBook,
    Tally,
    descriptors_needed,
    fit_descriptor_budget,
)


class Fake:
    """What the book reads of a connection, and what it asks of one."""

    def __init__(self, book: ConnectionBook, name: str) -> None:
        self.book = book
        self.name = name
        self.pool: str | None = None
        self.in_head = True
        self.outstanding = 0
        self.since = 0.0
        self.generation = 0
        self.paused_at = 0.0
        self.client = name
        self.gave_way = False

    def give_way(self) -> None:
        self.gave_way = True
        self.book.forget(self)  # type: ignore[arg-type]

    def cut_off(self) -> None:
        self.gave_way = True


def let_in(book: ConnectionBook, name: str) -> Any:
    connection = Fake(book, name)
    connection.pool = book.admit(connection)  # type: ignore[arg-type]
    if connection.pool is not None:
        book.place(connection)  # type: ignore[arg-type]
    return connection


def age(connection: Any, seconds: float) -> None:
    connection.since -= seconds
    connection.paused_at -= seconds


def test_heads_give_way_oldest_first_after_a_second_then_idle_then_slow_readers() -> None:
    async def scenario() -> None:
        book = ConnectionBook(3)
        head, idle, reader = (let_in(book, name) for name in ("head", "idle", "reader"))
        idle.in_head = False
        book.place(idle)
        reader.in_head, reader.outstanding = False, 1
        book.place(reader)
        reader.paused_at = time.monotonic()
        book.reader_paused(reader)
        # All young: the newcomer goes to the reserve, nobody gives way.
        assert let_in(book, "young").pool == RESERVE
        assert not (head.gave_way)
        assert not (idle.gave_way)
        assert not (reader.gave_way)
        for connection in (head, idle, reader):
            age(connection, 1.5)
        assert let_in(book, "first").pool == GENERAL
        assert head.gave_way
        assert not idle.gave_way
        assert let_in(book, "second").pool == GENERAL
        assert idle.gave_way
        assert not reader.gave_way
        assert let_in(book, "third").pool == GENERAL
        assert reader.gave_way

    asyncio.run(scenario())


def test_a_connection_under_way_never_gives_way() -> None:
    async def scenario() -> None:
        book = ConnectionBook(1)
        busy = let_in(book, "busy")
        busy.in_head, busy.outstanding = False, 1
        book.place(busy)
        age(busy, 60)
        assert let_in(book, "newcomer").pool == RESERVE
        assert not busy.gave_way

    asyncio.run(scenario())


def test_the_reserve_keeps_a_newcomer_for_two_loop_iterations() -> None:
    async def scenario() -> None:
        book = ConnectionBook(0)
        probe = let_in(book, "probe")
        assert probe.pool == RESERVE
        # The rest of a flood accepted in the same iteration cannot take its place.
        same = [let_in(book, f"flood{n}") for n in range(RESERVE_CONNECTIONS + 5)]
        assert not probe.gave_way
        assert sum(c.pool is None for c in same) == 6  # the reserve was full
        await asyncio.sleep(0)  # one iteration: still kept (it is read in this one)
        assert let_in(book, "next").pool is None
        assert not probe.gave_way
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert let_in(book, "later").pool == RESERVE
        assert probe.gave_way  # the oldest head, two iterations on

    asyncio.run(scenario())


def test_at_most_sixteen_readers_wait_and_the_longest_goes() -> None:
    async def scenario() -> None:
        book = ConnectionBook(100)
        readers = [let_in(book, f"r{n}") for n in range(guard.MAX_SLOW_READERS + 1)]
        for number, reader in enumerate(readers):
            reader.paused_at = time.monotonic() - (10 if number == 0 else 0)
            book.reader_paused(reader)
        assert readers[0].gave_way
        assert not any(reader.gave_way for reader in readers[1:])

    asyncio.run(scenario())


def test_the_budget_is_raised_up_to_the_hard_limit_or_the_cap_fitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"now": (256, 100_000)}

    def getrlimit(_: int) -> tuple[int, int]:
        return limits["now"]

    def setrlimit(_: int, value: tuple[int, int]) -> None:
        limits["now"] = value

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    budget = fit_descriptor_budget(512)
    assert budget.max_connections == 512
    assert budget.raised_from == 256
    assert limits["now"][0] == descriptors_needed(512)
    assert budget.warning is None
    limits["now"] = (512, 600)
    budget = fit_descriptor_budget(512)
    assert budget.max_connections == 600 - (descriptors_needed(512) - 512)
    assert budget.warning
    assert "LimitNOFILE" in budget.warning
    assert f"holding {budget.max_connections} connections" in budget.warning
    limits["now"] = (200, 200)  # not even the fixed part fits
    budget = fit_descriptor_budget(512)
    assert budget.max_connections == 1
    assert budget.warning
    assert "cannot hold even 1 connection safely (321 open files)" in budget.warning


def test_one_summary_line_a_minute_warning_only_under_pressure() -> None:
    lines: list[tuple[str, str]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        book = ConnectionBook(512, log=lambda level, line: lines.append((level, line)))
        for _ in range(1000):
            book.tally.refused += 1
            book.noted(loop)
        assert len(lines) == 1  # the first at once, the rest wait for the minute
        assert lines[0][0] == "WARNING"
        assert "1 refused" in lines[0][1]
        book.summarise()  # as at the minute (or at exit)
        assert lines[1][0] == "WARNING"
        assert "999 refused" in lines[1][1]
        # Clients' mistakes alone: no line at once, DEBUG at the minute.
        quiet = ConnectionBook(512, log=lambda level, line: lines.append((level, line)))
        quiet.tally.malformed += 3
        quiet.noted(loop)
        assert len(lines) == 2
        quiet.summarise()
        assert lines[2][0] == "DEBUG"
        assert "3 sent malformed HTTP" in lines[2][1]

    asyncio.run(scenario())


def test_tally_line_names_only_what_happened() -> None:
    tally = Tally(evicted_heads=4, head_timeouts=2)
    line = tally.line(512)
    assert "4 closed with a head still arriving" in line
    assert "2 timed out" in line
    assert "refused" not in line
    assert "MONITOR_MAX_CONNECTIONS=512" in line
