"""Our metrics recorded into an OpenTelemetry MeterProvider, exported over OTLP/HTTP.

* The GenAI client metrics, one record per LLM *attempt* (the conventions time one
  operation; a call with retries is several): ``gen_ai.client.operation.duration``
  (s), ``gen_ai.client.operation.time_to_first_chunk`` (s, streamed answers) and
  token usage, as released (``gen_ai.client.token.usage``) or, opted in, as the
  newer ``gen_ai.client.inference.*`` instruments (see :mod:`.names`). Attributes:
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``server.address``, ``server.port``, and ``error.type``
  on failure. Model names are the metric labels' (bounded: a model typed with
  ``--model`` is ``unverified`` until the provider answers).
* Our counter and gauge families, under their OTel names, fed with each flush's
  deltas. Our histograms stay in Prometheus form (the GenAI ones carry latencies).

Temporality is cumulative unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``
says otherwise (the exporter reads it): delta breaks Prometheus ``rate()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant_monitoring import __version__
from assistant_monitoring.metrics.instrument import LlmAttempt
from assistant_monitoring.metrics.registry import AnyFamily, SeriesDelta
from assistant_monitoring.otel import names

if TYPE_CHECKING:
    from assistant_monitoring.otel.refusals import ExportWatch


def make_meter_provider(
    resource: Any, *, exporter: Any | None = None, watch: ExportWatch | None = None
) -> Any:
    """A MeterProvider exporting every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60 s);
    ``watch`` counts and says the exports that fail (:mod:`.refusals`)."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    from assistant_monitoring.metrics.families import GENAI_DURATION_BUCKETS, GENAI_TOKEN_BUCKETS

    # The reader reads OTEL_METRIC_EXPORT_INTERVAL itself, and falls back to 60 s
    # on a value it cannot read.
    if exporter is None:
        from assistant_monitoring.otel.exporters import WatchedMetricExporter

        exporter = WatchedMetricExporter(watch) if watch is not None else OTLPMetricExporter()
    reader = PeriodicExportingMetricReader(exporter)
    token_histograms = [names.TOKEN_USAGE, *names.INFERENCE_OPERATION.values()]
    views = [
        View(
            instrument_name=names.DURATION,
            aggregation=ExplicitBucketHistogramAggregation(list(GENAI_DURATION_BUCKETS)),
        ),
        View(
            instrument_name=names.TIME_TO_FIRST_CHUNK,
            aggregation=ExplicitBucketHistogramAggregation(list(names.FIRST_CHUNK_BUCKETS)),
        ),
        *(
            View(
                instrument_name=name,
                aggregation=ExplicitBucketHistogramAggregation(list(GENAI_TOKEN_BUCKETS)),
            )
            for name in token_histograms
        ),
    ]
    # shutdown_on_exit=False: ours bounds the wait at exit (see OtelExport.shutdown).
    return MeterProvider(
        metric_readers=[reader], resource=resource, views=views, shutdown_on_exit=False
    )


class OtelMetrics:
    """Records attempts and flush deltas into a MeterProvider's instruments."""

    def __init__(self, provider: Any, *, latest: bool | None = None) -> None:
        self.provider = provider
        self.latest = names.latest_experimental() if latest is None else latest
        meter = provider.get_meter("assistant_monitoring", __version__)
        self._meter = meter
        self._duration = meter.create_histogram(
            names.DURATION, unit="s", description="GenAI operation duration."
        )
        self._first_chunk = meter.create_histogram(
            names.TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first chunk of a streamed answer.",
        )
        if self.latest:
            self._usage = {
                kind: meter.create_counter(name, unit="{token}", description=f"{kind} tokens.")
                for kind, name in names.INFERENCE_USAGE.items()
            }
            self._per_operation = {
                kind: meter.create_histogram(
                    name, unit="{token}", description=f"{kind} tokens per operation."
                )
                for kind, name in names.INFERENCE_OPERATION.items()
            }
        else:
            self._tokens = meter.create_histogram(
                names.TOKEN_USAGE, unit="{token}", description="Tokens used per GenAI operation."
            )
        self._instruments: dict[str, Any] = {}  # our families' counters and gauges

    def on_attempt(self, attempt: LlmAttempt) -> None:
        """Record one LLM attempt under the GenAI names."""
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": attempt.provider,
            "gen_ai.request.model": attempt.request_model,
        }
        if attempt.response_model:
            attributes["gen_ai.response.model"] = attempt.response_model
        if attempt.server_address:
            attributes["server.address"] = attempt.server_address
            attributes["server.port"] = attempt.server_port
        if attempt.error_type is not None:
            attributes["error.type"] = attempt.error_type
        self._duration.record(attempt.duration, attributes)
        if attempt.time_to_first_chunk is not None:
            self._first_chunk.record(attempt.time_to_first_chunk, attributes)
        tokens = attempt.tokens
        if not any(tokens.values()):
            return
        usage = {"input": attempt.input_tokens, "output": tokens.get("output", 0)}
        if not self.latest:
            for kind, count in usage.items():
                self._tokens.record(count, {**attributes, "gen_ai.token.type": kind})
            return
        for kind, count in usage.items():
            self._per_operation[kind].record(count, attributes)
        totals = {
            **usage,
            "cache_read": tokens.get("cache_read", 0),
            "cache_write": attempt.cache_write_tokens,
            "reasoning": attempt.reasoning_tokens,
        }
        for kind, count in totals.items():
            if count:
                self._usage[kind].add(count, attributes)

    def on_flush(self, families: list[AnyFamily], deltas: list[SeriesDelta]) -> None:
        """Add a flush's counter deltas and set the latest gauge values."""
        kinds = {family.name: family for family in families}
        for delta in deltas:
            family = kinds.get(delta.family)
            if family is None or family.kind == "histogram":
                continue
            instrument = self._instruments.get(family.name)
            if instrument is None:
                name = names.otel_name(family.name)
                create = (
                    self._meter.create_counter
                    if family.kind == "counter"
                    else self._meter.create_gauge
                )
                instrument = self._instruments[family.name] = create(
                    name.name, unit=name.unit, description=family.help
                )
            if family.kind == "counter":
                instrument.add(delta.value, dict(delta.labels))
            else:
                instrument.set(delta.value, dict(delta.labels))
