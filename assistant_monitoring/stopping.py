"""Whether this process has been asked to stop (SIGTERM, Ctrl-C).

Set by the signal handlers before anything else runs, read by code that would
otherwise wait: a lock wait (``sqlitefile``) gives up at once instead of holding
the exit for ``DATABASE_BUSY_TIMEOUT``. A flag, not an exception: the handlers
already raise or cancel where the work is; this only tells waits elsewhere (a
database's worker thread, the exit hook's last flush) not to start a long one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["clear_stop_request", "close_before_exit", "closers", "request_stop", "stop_requested"]

_requested = threading.Event()
_closers: list[Callable[[], None]] = []


def request_stop() -> None:
    """Note that the process is stopping: lock waits from now on give up at once."""
    _requested.set()


def stop_requested() -> bool:
    """Whether :func:`request_stop` was called in this process."""
    return _requested.is_set()


def clear_stop_request() -> None:
    """Forget a stop request (tests that run several commands in one process)."""
    _requested.clear()


def close_before_exit(closer: Callable[[], None]) -> None:
    """Have the CLI's entry point call ``closer`` as it returns (also registered with
    ``atexit`` by the caller, for other entry points): a signal that arrives while it
    runs then ends the process with its own exit code, where in an ``atexit`` hook
    Python would print "Exception ignored" and a traceback instead."""
    _closers.append(closer)


def closers() -> list[Callable[[], None]]:
    """Take the registered closers, newest first (each runs once)."""
    taken = list(reversed(_closers))
    _closers.clear()
    return taken
