"""Opt-in OpenTelemetry export over OTLP/HTTP: traces, metrics, logs.

Needs the ``[otel]`` extra (``pip install 'assistant[otel]'``); nothing here imports
OpenTelemetry until :func:`start_otel` finds a signal asked for. The standard
variables decide, and the SDK's exporters read the rest themselves (headers,
timeouts, per-signal endpoints, compression, metric temporality):

* traces: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` set, and
  ``OTEL_TRACES_EXPORTER`` unset or ``otlp``: one trace per pipeline run
  (:mod:`.traces`);
* metrics: the endpoint (or ``..._METRICS_ENDPOINT``), ``OTEL_METRICS_EXPORTER``
  unset or ``otlp`` (:mod:`.metrics`);
* logs, opt-in: ``OTEL_LOGS_EXPORTER=otlp`` and an endpoint (:mod:`.logs`);
* ``OTEL_SDK_DISABLED=true`` turns all three off.

A CLI process never waits on a collector: at exit, what is pending is sent by
threads given ``MONITOR_OTEL_EXIT_TIMEOUT_MS`` (default 50 ms) in all; whatever is
not through by then (a collector down, blackholed or far away) is dropped, never
retried, and the process exits.

An export the collector refuses (any status but 2xx, the exporter's own retries
of 429 and 502-504 included) or never answers is counted by signal and reason in
``assistant_metrics_errors_total`` and said once per signal and reason
(:mod:`.refusals`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

SIGNALS = ("traces", "metrics", "logs")
DEFAULT_EXIT_TIMEOUT_MS = 50


def requested_signals(environ: Mapping[str, str] | None = None) -> list[str]:
    """Which signals the standard variables ask to export over OTLP."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    wanted = []
    for signal in SIGNALS:
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        default = "none" if signal == "logs" else "otlp"  # logs are opt-in
        exporters = env.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower() or default
        if endpoint and "otlp" in {name.strip() for name in exporters.split(",")}:
            wanted.append(signal)
    return wanted


def otlp_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether any signal is to be exported over OTLP."""
    return bool(requested_signals(environ))


class OtelExport:
    """The providers of one process, and their bounded shutdown."""

    def __init__(self, *, exit_timeout: float) -> None:
        self.exit_timeout = exit_timeout
        self.tracer_provider: Any = None
        self.meter_provider: Any = None
        self.logger_provider: Any = None
        self.metrics: Any = None  # an OtelMetrics, fed by each metrics flush
        self.tracer: Any = None  # an OtelTracer
        self.log_sink_id: int | None = None
        self.watch: Any = None  # an ExportWatch: the exports that failed

    def on_flush(self, families: list[Any], deltas: list[Any]) -> None:
        """A metrics flush's deltas (MetricsRuntime calls this)."""
        if self.metrics is not None:
            self.metrics.on_flush(families, deltas)

    def shutdown(self) -> bool:
        """Send what is pending and stop, waiting ``exit_timeout`` at most in all.

        Each provider shuts down in its own daemon thread, so the three exports go
        out at once; a thread still waiting on the network at the deadline is left
        behind and dies with the process. An export left behind that the collector
        had refused by then (a 429 waiting out its Retry-After) is counted as refused
        (``ExportWatch.abandon``). True when all finished in time or were refused;
        False when one was still waiting for an answer.
        """
        if self.log_sink_id is not None:
            from loguru import logger

            # ValueError: logging was reconfigured since, and the sink is gone already.
            with contextlib.suppress(ValueError):
                logger.remove(self.log_sink_id)
            self.log_sink_id = None
        providers = {
            "traces": self.tracer_provider,
            "metrics": self.meter_provider,
            "logs": self.logger_provider,
        }
        threads = {
            signal: threading.Thread(target=_quietly(p.shutdown), name="otel-exit", daemon=True)
            for signal, p in providers.items()
            if p
        }
        for thread in threads.values():
            thread.start()
        deadline = _now() + self.exit_timeout
        for thread in threads.values():
            thread.join(max(0.0, deadline - _now()))
        late = {signal for signal, thread in threads.items() if thread.is_alive()}
        if late and self.watch is not None:
            late -= self.watch.abandon()
        return not late


def _now() -> float:
    import time

    return time.monotonic()


def _quietly(work: Any) -> Any:
    def run() -> None:
        try:
            work()
        except Exception:  # export trouble at exit is not the user's problem
            return

    return run


def make_export(
    signals: list[str],
    resource: Any,
    *,
    log_level: str = "INFO",
    exit_timeout_ms: int,
    count: Callable[[str], None] | None = None,
) -> OtelExport:
    """The providers for ``signals``, their exporters configured by the variables.

    ``count(operation)`` counts one failed export in ``assistant_metrics_errors_total``.
    """
    from loguru import logger

    from assistant_monitoring.otel.refusals import ExportWatch

    export = OtelExport(exit_timeout=exit_timeout_ms / 1000)
    watch = export.watch = ExportWatch(count)
    if "traces" in signals:
        from assistant_monitoring.otel.traces import OtelTracer, make_tracer_provider

        export.tracer_provider = make_tracer_provider(resource, watch=watch)
        export.tracer = OtelTracer(export.tracer_provider)
    if "metrics" in signals:
        from assistant_monitoring.otel.metrics import OtelMetrics, make_meter_provider

        export.meter_provider = make_meter_provider(resource, watch=watch)
        export.metrics = OtelMetrics(export.meter_provider)
    if "logs" in signals:
        from assistant_monitoring.otel.logs import OtelLogSink, make_logger_provider

        export.logger_provider = make_logger_provider(resource, watch=watch)
        export.log_sink_id = logger.add(
            OtelLogSink(export.logger_provider),
            level=log_level,
            format="{message}",
            colorize=False,
            catch=True,
        )
    return export


_started: list[OtelExport | None] = []


def start_otel(
    runtime: Any,
    *,
    environment: str,
    log_level: str = "INFO",
    exit_timeout_ms: int = DEFAULT_EXIT_TIMEOUT_MS,
) -> OtelExport | None:
    """Export what the variables ask for from this process (once; None when nothing).

    ``runtime`` is the process's :class:`~assistant_monitoring.metrics.MetricsRuntime`:
    its instrumentation gets the exporting tracer and the GenAI metrics listener,
    and its exit hook shuts the export down. Without the ``[otel]`` extra it logs
    once how to install it and returns None.
    """
    if _started:
        return _started[0]
    signals = requested_signals()
    if not signals:
        _started.append(None)
        return None
    from loguru import logger

    try:
        from assistant_monitoring.otel.resource import build_resource

        resource = build_resource(environment)
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'assistant[otel]'"
        )
        _started.append(None)
        return None
    instrumentation = runtime.instrumentation
    errors = instrumentation.metrics.metrics_errors

    def count(operation: str) -> None:
        errors.labels(operation).inc()

    try:
        export = make_export(
            signals, resource, log_level=log_level, exit_timeout_ms=exit_timeout_ms, count=count
        )
    except Exception as error:  # a variable the SDK refuses: answer anyway, say why
        logger.warning(f"OTLP export is off for this process: {type(error).__name__}: {error}")
        _started.append(None)
        return None
    if export.tracer is not None:
        instrumentation.tracer = export.tracer
    if export.metrics is not None:
        instrumentation.attempt_listeners.append(export.metrics.on_attempt)
    runtime.otel = export
    _started.append(export)
    return export
