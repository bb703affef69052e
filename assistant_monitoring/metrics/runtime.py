"""Per-process metrics lifecycle: flush at exit, on SIGTERM, and every few seconds.

Every CLI invocation is a short process. :class:`MetricsRuntime` makes sure what it
recorded reaches ``monitoring.db``:

* at interpreter exit (normal return, an exception, ``sys.exit``), via ``atexit``;
* on SIGTERM: the handler raises ``SystemExit(143)`` so ``finally`` blocks and
  ``atexit`` run (Python's default for SIGTERM is to die on the spot);
* on SIGINT: Python raises KeyboardInterrupt, the CLI exits 130, ``atexit`` runs;
* every ``flush_interval`` seconds in long-running processes (a daemon thread).

A flush that fails (disk full, store locked for too long) puts its deltas back in
the registry, logs once and counts the failure: the next flush retries, and the
assistant itself never sees an error. When the last flush, at exit, fails, the
deltas are kept in ``monitoring.db.pending/`` for the next process
(``metrics/pending.py``).
"""

from __future__ import annotations

import atexit
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from assistant_monitoring.errors import EXIT_TERMINATED
from assistant_monitoring.metrics.instrument import Instrumentation, _swallow
from assistant_monitoring.metrics.retention import Retention
from assistant_monitoring.metrics.store import MetricsStore, StoreError
from assistant_monitoring.sqlitefile import is_lock_error
from assistant_monitoring.stopping import close_before_exit, request_stop


class MetricsRuntime:
    """Owns a process's instrumentation and its connection to the store."""

    def __init__(
        self,
        instrumentation: Instrumentation,
        store: MetricsStore | None,
    ) -> None:
        self.instrumentation = instrumentation
        self.store = store
        self.flushes = 0
        self.failures = 0
        self.otel: Any = None  # an OtelExport when OTLP export is on (otel.start_otel)
        self.last_error: BaseException | None = None  # of the last failed flush
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def flush(self, *, export: bool = True) -> bool:
        """Write what was recorded since the last flush; False when it failed.

        ``export=False``: the store only (the exit sent these deltas over OTLP already).
        """
        if self.store is None and self.otel is None:
            return True
        registry = self.instrumentation.registry
        with self._lock:
            deltas = registry.take_deltas()
            if not deltas:
                return True
            if self.store is None:  # an unwritable store: OTLP is the only way out
                if export:
                    self._export(deltas)
                return True
            try:
                self.store.write(registry.families(), deltas)
            except Exception as error:
                registry.restore(deltas)
                self.failures += 1
                self.last_error = error
                _swallow(self.instrumentation.metrics, "flush", error)
                return False
            except BaseException:
                # SIGTERM/Ctrl-C mid-write: the transaction rolled back; keep the
                # deltas so the exit hook's flush writes them.
                registry.restore(deltas)
                raise
            # Only now: deltas put back after a failed write come round again, and
            # would be counted twice over OTLP had they gone out before it.
            if export:
                self._export(deltas)
            self.flushes += 1
            return True

    def _close_otel(self) -> None:
        """Send the last deltas over OTLP and stop the export, within its budget.

        Before the store's last write, so that an export the collector did not take
        in time is counted there (``assistant_metrics_errors_total{operation=
        "otel_exit"}``): at exit the log files are already closed. So are the exports
        it refused, by signal and reason (``otel_traces_http_429``...: one that was
        refused and still retrying at the deadline is counted there, not as
        ``otel_exit``; see ``assistant_monitoring.otel.refusals``).
        """
        registry = self.instrumentation.registry
        with self._lock:
            deltas = registry.take_deltas()
            self._export(deltas)
            registry.restore(deltas)  # for the store's write, not sent again
        try:
            if not self.otel.shutdown():
                self.instrumentation.metrics.metrics_errors.labels("otel_exit").inc()
        except Exception as error:
            _swallow(self.instrumentation.metrics, "otel", error)

    def _export(self, deltas: list[Any]) -> None:
        if self.otel is None:
            return
        try:
            self.otel.on_flush(self.instrumentation.registry.families(), deltas)
        except Exception as error:  # export trouble never costs the store its data
            _swallow(self.instrumentation.metrics, "otel", error)

    def start_periodic_flush(self, interval: float) -> None:
        """Flush every ``interval`` seconds from a daemon thread (long-running processes)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.instrumentation.sample_process()
                self.flush()

        self._thread = threading.Thread(target=loop, name="metrics-flush", daemon=True)
        self._thread.start()

    def install_exit_hooks(self) -> None:
        """Flush at exit and turn SIGTERM into a clean exit (main thread only)."""
        atexit.register(self.close)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _exit_on_sigterm)

    def close(self) -> None:
        """Stop the flush thread, sample the process, flush, close the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.instrumentation.sample_process()
        if self.otel is not None:
            self._close_otel()
        try:
            flushed = self.flush(export=False)
        except BaseException:  # SIGTERM or Ctrl-C while the last flush waited for a lock
            self._spool_leftovers()
            self._close_store()
            raise
        if not flushed and _locked(self.last_error):
            self._spool_leftovers()
        self._close_store()

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
        atexit.unregister(self.close)

    def _spool_leftovers(self) -> None:
        """The last flush met a lock (past the busy timeout, or a signal ended the
        wait): keep the deltas in a file the next flush of any process adds in. Not
        for a damaged or newer store: it will not take them later either."""
        if self.store is None:
            return
        registry = self.instrumentation.registry
        deltas = registry.take_deltas()
        if not deltas:
            return
        try:
            self.store.spool(registry.families(), deltas)
        except (OSError, ValueError) as error:  # a full disk: nothing more can be done
            _swallow(self.instrumentation.metrics, "spool", error)


def _locked(error: BaseException | None) -> bool:
    if isinstance(error, StoreError):
        return error.kind == "locked"
    return error is not None and is_lock_error(error)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    request_stop()  # the exit flush must not wait for a lock
    raise SystemExit(EXIT_TERMINATED)


_runtime: MetricsRuntime | None = None


def start_metrics(
    store_path: Path | None,
    *,
    retention: Retention | None = None,
    flush_interval: float | None = None,
    prices_file: Path | None = None,
) -> MetricsRuntime:
    """Create this process's runtime (once): ``store_path=None`` records in memory only."""
    global _runtime
    if _runtime is not None:
        return _runtime
    from assistant_monitoring.pricing import PriceTable

    instrumentation = Instrumentation(prices=PriceTable.with_overrides(prices_file))
    store = MetricsStore(store_path, retention=retention) if store_path else None
    runtime = MetricsRuntime(instrumentation, store)
    runtime.install_exit_hooks()
    close_before_exit(stop_metrics)  # the CLI's entry point flushes before exit
    if flush_interval is not None:
        runtime.start_periodic_flush(flush_interval)
    _runtime = runtime
    return runtime


def current_runtime() -> MetricsRuntime | None:
    """The runtime started by :func:`start_metrics`, if any."""
    return _runtime


def stop_metrics() -> None:
    """Flush and forget the runtime (tests; a CLI command that ends early)."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None
