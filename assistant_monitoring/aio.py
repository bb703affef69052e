"""Run a coroutine so that SIGTERM and Ctrl-C stop it cleanly: one story, not two.

The CLI turns SIGTERM into ``SystemExit(143)`` (see ``errorhandling``), raised in
whatever Python code is running. Inside an event loop that is the loop itself, not
the work: the loop stops, the clean-up closes the HTTP client under a request still
in flight, and the request then fails as a "connection error", is retried, and is
recorded as a provider failure, while the run it belonged to is left half-finished.

:func:`run` does what ``asyncio.Runner`` does for Ctrl-C, for SIGTERM too: the signal
cancels the running task, so the work sees ``CancelledError`` where it is, ends as
*interrupted* (the pipeline records it so, once, everywhere), and only then does
the process exit with 143 (130 for Ctrl-C). A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

from assistant_monitoring.errors import EXIT_TERMINATED, is_interruption
from assistant_monitoring.stopping import request_stop

__all__ = ["interruption", "is_interruption", "run"]

T = TypeVar("T")

_received: list[str] = []  # the signals that interrupted this process, in order


def interruption() -> str:
    """What interrupted the work: ``SIGTERM``, ``SIGINT`` (Ctrl-C), or ``cancelled``."""
    return _received[-1] if _received else "cancelled"


def run(coro: Coroutine[Any, Any, T], *, runner: asyncio.Runner | None = None) -> T:
    """Run ``coro`` to completion on ``runner`` (a new one if None); signals cancel it.

    SIGTERM: the task is cancelled, then ``SystemExit(143)`` is raised here.
    SIGINT: the task is cancelled, then ``KeyboardInterrupt``. Off the main thread
    there are no signals to handle, and this is plain ``runner.run``.
    """
    if runner is None:
        with asyncio.Runner() as own:
            return run(coro, runner=own)
    if threading.current_thread() is not threading.main_thread():
        return runner.run(coro)
    loop = runner.get_loop()
    stopped_by: list[int] = []
    tasks: list[asyncio.Task[Any]] = []

    async def main() -> T:
        current = asyncio.current_task()
        if current is not None:
            tasks.append(current)
        return await coro

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        _received.append(signal.Signals(signum).name)
        if len(stopped_by) > 1 or not tasks or tasks[0].done():
            _raise_for(signum)  # a second signal: stop now
        tasks[0].cancel()

    def on_signal_now(signum: int, frame: FrameType | None) -> None:
        # A plain handler, not loop.add_signal_handler: that one runs only when the
        # loop gets control back, and a thread waiting for a database lock (or
        # synchronous code on the loop) would keep it from acting for the whole
        # wait. Noting the stop here ends such waits at once; the cancellation
        # itself still happens on the loop, where the work is.
        request_stop()
        loop.call_soon_threadsafe(on_signal, signum)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in previous:
        signal.signal(signum, on_signal_now)
    try:
        result = runner.run(main())
    except asyncio.CancelledError:
        if stopped_by:
            _raise_for(stopped_by[0])
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if stopped_by:  # the work swallowed the cancellation: the signal still ends us
        _raise_for(stopped_by[0])
    return result


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(EXIT_TERMINATED)
