"""The CLI's last line of defence: one handler for every error that reaches the top.

It logs the error with its context (traceback in the log file, never on the
terminal unless ``--debug``), counts it by type in ``assistant_errors_total``,
classifies its severity, opens the related circuit breaker when a service error is
critical, and returns the one line to show and the exit code.

SIGTERM becomes ``SystemExit(143)``, so ``finally`` blocks and exit hooks (metrics
flush, log close, database close) run exactly as for Ctrl-C (130).
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from types import FrameType

from assistant_monitoring.errors import EXIT_FAILURE, EXIT_TERMINATED, MonitoringError
from assistant_monitoring.stopping import request_stop


@dataclass(frozen=True)
class HandledError:
    """What the CLI prints and how it exits."""

    message: str
    exit_code: int
    severity: str


def severity_of(error: BaseException) -> str:
    """'critical' for a service that is down, 'error' for the user's to fix, 'bug' otherwise."""
    if getattr(error, "critical", False) or type(error).__name__ == "CircuitOpenError":
        return "critical"
    if isinstance(error, MonitoringError):
        return "error"
    return "bug"


def handle_uncaught(error: BaseException, *, context: str, debug: bool) -> HandledError:
    """Log, count and classify ``error``; return the line to print.

    ``context`` is where it happened, as the code names it (``cli:monitor.metrics``):
    it becomes a label of ``assistant_errors_total``.
    """
    severity = severity_of(error)
    try:
        from loguru import logger

        from assistant_monitoring.logs.names import FILE_ONLY

        logger.opt(exception=error).bind(
            **{FILE_ONLY: True},
            event="uncaught_error",
            severity=severity,
            context=context,
            error_type=type(error).__name__,
        ).error(f"{context}: {type(error).__name__}: {error}")
    except Exception:  # logging must not hide the original error
        pass
    _count(error, context)
    service = getattr(error, "service", None)
    already_counted = getattr(error, "breaker_recorded", False)
    if severity == "critical" and isinstance(service, str) and not already_counted:
        _trip(service, error)  # a service error that escaped without a breaker
    if isinstance(error, MonitoringError):
        return HandledError(str(error), error.exit_code, severity)
    hint = "" if debug else " (run with --debug for the traceback)"
    return HandledError(f"unexpected {type(error).__name__}: {error}{hint}", EXIT_FAILURE, severity)


def _count(error: BaseException, context: str) -> None:
    from assistant_monitoring.metrics.runtime import current_runtime

    runtime = current_runtime()
    if runtime is not None:
        runtime.instrumentation.error(error, context=context)


def _trip(service: str, error: BaseException) -> None:
    """Record a failure on the service's breaker (errors that escaped unguarded)."""
    from assistant_monitoring.metrics.runtime import current_runtime

    runtime = current_runtime()
    store = runtime.store if runtime is not None else None
    if store is None:
        return
    try:
        from assistant_monitoring.breaker import BreakerStateStore, CircuitBreaker

        CircuitBreaker(service, store=BreakerStateStore(store.path)).record_failure(
            error if isinstance(error, Exception) else RuntimeError(str(error))
        )
    except Exception:
        pass


def _terminate(signum: int, frame: FrameType | None) -> None:
    request_stop()  # lock waits from now on give up at once (the exit flush too)
    raise SystemExit(EXIT_TERMINATED)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    request_stop()
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGTERM -> SystemExit(143), SIGINT -> KeyboardInterrupt, in the main thread.

    Both first note that the process is stopping, so that no wait for a database
    lock, here or in another thread, holds the exit.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _interrupt)
