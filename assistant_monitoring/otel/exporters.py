"""The SDK's OTLP/HTTP exporters, each export call watched (:mod:`.refusals`).

Subclasses that only pass a ``session=`` (the exporters' documented parameter) and
wrap the public ``export()``: the SDK's configuration (the variables, metric
temporality and aggregation), its retries and its timeouts are all its own.
Imported only when a signal is exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from assistant_monitoring.otel.refusals import ExportWatch


class WatchedSpanExporter(OTLPSpanExporter):
    """OTLP/HTTP spans; failed exports counted and said (see :mod:`.refusals`)."""

    def __init__(self, watch: ExportWatch) -> None:
        super().__init__(session=watch.session("traces"))
        self.refusals = watch

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        send = super().export
        return self.refusals.run("traces", lambda: send(spans))


class WatchedMetricExporter(OTLPMetricExporter):
    """OTLP/HTTP metrics; failed exports counted and said."""

    def __init__(self, watch: ExportWatch) -> None:
        super().__init__(session=watch.session("metrics"))
        self.refusals = watch

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10000, **kwargs: Any
    ) -> MetricExportResult:
        send = super().export
        return self.refusals.run(
            "metrics", lambda: send(metrics_data, timeout_millis=timeout_millis, **kwargs)
        )


class WatchedLogExporter(OTLPLogExporter):
    """OTLP/HTTP log records; failed exports counted and said."""

    def __init__(self, watch: ExportWatch) -> None:
        super().__init__(session=watch.session("logs"))
        self.refusals = watch

    def export(self, batch: Sequence[Any]) -> Any:
        send = super().export
        return self.refusals.run("logs", lambda: send(batch))
