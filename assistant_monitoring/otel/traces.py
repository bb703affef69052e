"""Spans recorded by the OpenTelemetry SDK and sent over OTLP/HTTP in batches.

:class:`OtelTracer` is a :class:`assistant_monitoring.tracing.Tracer`: the pipeline
and the LLM calls use the same three methods whether anything exports or not. The
parent of a run's root span is the process's ``TRACEPARENT`` when there is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant_monitoring.redact import redact_text
from assistant_monitoring.tracing import Attributes, AttributeValue, Span, SpanContext, Tracer

if TYPE_CHECKING:
    from assistant_monitoring.otel.refusals import ExportWatch


class OtelSpan(Span):
    """A span the SDK records."""

    __slots__ = ("otel",)
    recording = True

    def __init__(self, name: str, context: SpanContext, otel: Any) -> None:
        super().__init__(name, context)
        self.otel = otel

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.otel.set_attribute(key, value)

    def set_attributes(self, attributes: Attributes) -> None:
        self.otel.set_attributes(dict(attributes))

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        self.otel.add_event(name, dict(attributes) if attributes else None)

    def fail(self, error_type: str, message: str | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.otel.set_attribute("error.type", error_type)
        description = redact_text(message)[:300] if message else error_type
        self.otel.set_status(Status(StatusCode.ERROR, description))

    def interrupt(self) -> None:
        self.otel.set_attribute("assistant.status", "interrupted")
        self.otel.add_event("interrupted")

    def end(self) -> None:
        self.otel.end()


class OtelTracer(Tracer):
    """Makes SDK spans; ``provider`` is a configured ``TracerProvider``."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace

        from assistant_monitoring import __version__

        self.provider = provider
        self._trace = trace
        self._tracer = provider.get_tracer("assistant_monitoring", __version__)
        self._kinds = {"internal": trace.SpanKind.INTERNAL, "client": trace.SpanKind.CLIENT}

    def start_span(
        self,
        name: str,
        *,
        parent: Span | SpanContext | None,
        kind: str = "internal",
        attributes: Attributes | None = None,
    ) -> Span:
        trace = self._trace
        if isinstance(parent, OtelSpan):
            context = trace.set_span_in_context(parent.otel)
        elif parent is not None:
            if isinstance(parent, Span):
                parent = parent.context
            remote = trace.SpanContext(
                trace_id=int(parent.trace_id, 16),
                span_id=int(parent.span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(0x01 if parent.sampled else 0x00),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        else:
            context = trace.set_span_in_context(trace.INVALID_SPAN)  # a new trace
        otel = self._tracer.start_span(
            name,
            context=context,
            kind=self._kinds.get(kind, trace.SpanKind.INTERNAL),
            attributes=dict(attributes) if attributes else None,
        )
        ids = otel.get_span_context()
        own = SpanContext(
            format(ids.trace_id, "032x"), format(ids.span_id, "016x"), ids.trace_flags.sampled
        )
        return OtelSpan(name, own, otel)


def make_tracer_provider(resource: Any, *, watch: ExportWatch | None = None) -> Any:
    """A TracerProvider exporting over OTLP/HTTP in batches (the standard variables
    set the endpoint, headers, timeout and the batch sizes); ``watch`` counts and
    says the exports that fail (:mod:`.refusals`)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from assistant_monitoring.otel.exporters import WatchedSpanExporter

    # shutdown_on_exit=False: the SDK's own atexit hook would wait on the collector
    # with its full timeout (10 s); ours bounds it (see OtelExport.shutdown).
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = WatchedSpanExporter(watch) if watch is not None else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
