"""Our loguru records as OpenTelemetry log records over OTLP/HTTP (``OTEL_LOGS_EXPORTER=otlp``).

Each record keeps its severity, message (redacted like the files), the structured
fields bound to it as attributes, where it was logged, and the trace context of the
span it was written in, so a backend links the line to its run's trace.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from assistant_monitoring import __version__
from assistant_monitoring.logs.names import FILE_ONLY
from assistant_monitoring.redact import redact_text

if TYPE_CHECKING:
    from assistant_monitoring.otel.refusals import ExportWatch

# loguru level number -> OTel SeverityNumber (TRACE=1, DEBUG=5, INFO=9, WARN=13,
# ERROR=17, FATAL=21; SUCCESS is INFO2).
_SEVERITY = ((50, 21), (40, 17), (30, 13), (25, 10), (20, 9), (10, 5), (0, 1))
_NOT_ATTRIBUTES = frozenset({"trace_id", "span_id", FILE_ONLY})
# What the export itself logs (the SDK, and the HTTP client under it at DEBUG):
# exporting those lines would make more of them, forever.
_EXPORT_LOGGERS = ("opentelemetry", "urllib3", "requests")


def make_logger_provider(resource: Any, *, watch: ExportWatch | None = None) -> Any:
    """A LoggerProvider exporting over OTLP/HTTP in batches; ``watch`` counts and
    says the exports that fail (:mod:`.refusals`)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from assistant_monitoring.otel.exporters import WatchedLogExporter

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    exporter = WatchedLogExporter(watch) if watch is not None else OTLPLogExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


def _severity(number: int) -> int:
    return next(otel for floor, otel in _SEVERITY if number >= floor)


def _attribute(value: Any) -> str | bool | int | float:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    return redact_text(json.dumps(value, default=str, separators=(",", ":")))


class OtelLogSink:
    """A loguru sink (``logger.add(sink)``) emitting to an OTel LoggerProvider."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry._logs import SeverityNumber

        self.provider = provider
        self._trace = trace
        self._severity = SeverityNumber
        self._logger = provider.get_logger("assistant_monitoring", __version__)

    def __call__(self, message: Any) -> None:
        record = message.record
        extra = record["extra"]
        if str(extra.get("stdlib_logger", "")).startswith(_EXPORT_LOGGERS):
            return
        attributes: dict[str, Any] = {
            key: _attribute(value) for key, value in extra.items() if key not in _NOT_ATTRIBUTES
        }
        attributes["code.function.name"] = record["function"]
        attributes["code.file.path"] = record["file"].path
        attributes["code.line.number"] = record["line"]
        attributes["logger.name"] = extra.get("logger_name") or record["name"] or ""
        exception = record["exception"]
        if exception is not None and exception.type is not None:
            attributes["exception.type"] = exception.type.__name__
            attributes["exception.message"] = redact_text(str(exception.value))[:1000]
        level = record["level"]
        self._logger.emit(
            timestamp=int(record["time"].timestamp() * 1e9),
            context=self._context(extra.get("trace_id"), extra.get("span_id")),
            severity_number=self._severity(_severity(level.no)),
            severity_text=level.name,
            body=redact_text(record["message"]),
            attributes=attributes,
        )

    def _context(self, trace_id: Any, span_id: Any) -> Any:
        """The span a line was written in, as an OTel context (None outside a run)."""
        if not isinstance(trace_id, str) or not isinstance(span_id, str):
            return None
        trace = self._trace
        span_context = trace.SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=False,
            trace_flags=trace.TraceFlags(0x01),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context))
