"""Opt-in OpenTelemetry export (OTLP/HTTP) for teams that run a collector.

Enabled when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._METRICS_ENDPOINT``) is set and
the ``[otel]`` extra is installed (``pip install 'assistant[otel]'``); the exporter
reads the standard ``OTEL_EXPORTER_OTLP_*`` variables itself (endpoint, headers,
timeout), and ``OTEL_METRIC_EXPORT_INTERVAL`` (ms) sets the export period.

What is sent:

* the GenAI semantic-convention metrics, recorded per LLM call:
  ``gen_ai.client.operation.duration`` (s) and ``gen_ai.client.token.usage``
  ({token}, ``gen_ai.token.type`` input|output), with ``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.request.model`` and, on failure, ``error.type``;
* beside them, our own counter and gauge families (``assistant_*``, ``process_*``)
  as OTel counters and gauges, fed from each flush's deltas.

Our histograms stay in Prometheus form (the GenAI histograms carry the latencies).
"""

from __future__ import annotations

import os
from typing import Any

from assistant_monitoring import __version__
from assistant_monitoring.metrics.instrument import Instrumentation, LlmCall
from assistant_monitoring.metrics.registry import AnyFamily, SeriesDelta

GENAI_DURATION = "gen_ai.client.operation.duration"
GENAI_TOKENS = "gen_ai.client.token.usage"


def otlp_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether the standard variables ask for OTLP metrics export."""
    env = os.environ if environ is None else environ
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


class OtelBridge:
    """Records our telemetry into an OpenTelemetry MeterProvider exporting over OTLP/HTTP."""

    def __init__(self, *, exporter: Any | None = None, interval_ms: int | None = None) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
        from opentelemetry.sdk.resources import Resource

        from assistant_monitoring.metrics.families import (
            GENAI_DURATION_BUCKETS,
            GENAI_TOKEN_BUCKETS,
        )

        interval = interval_ms or int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000"))
        reader = PeriodicExportingMetricReader(
            exporter or OTLPMetricExporter(), export_interval_millis=interval
        )
        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME", "assistant"),
                "service.version": __version__,
            }
        )
        views = [
            View(
                instrument_name=GENAI_DURATION,
                aggregation=ExplicitBucketHistogramAggregation(list(GENAI_DURATION_BUCKETS)),
            ),
            View(
                instrument_name=GENAI_TOKENS,
                aggregation=ExplicitBucketHistogramAggregation(list(GENAI_TOKEN_BUCKETS)),
            ),
        ]
        self.provider = MeterProvider(metric_readers=[reader], resource=resource, views=views)
        meter = self.provider.get_meter("assistant_monitoring", __version__)
        self._meter = meter
        self._duration = meter.create_histogram(
            GENAI_DURATION, unit="s", description="GenAI operation duration."
        )
        self._tokens = meter.create_histogram(
            GENAI_TOKENS, unit="{token}", description="Tokens used per GenAI operation."
        )
        self._counters: dict[str, Any] = {}
        self._gauges: dict[str, Any] = {}

    def on_llm_call(self, call: LlmCall, error: BaseException | None) -> None:
        """Record one LLM call with the GenAI attribute names."""
        attributes: dict[str, str] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": call.provider,
            "gen_ai.request.model": call.model,
        }
        if call.status != "success":
            attributes["error.type"] = type(error).__name__ if error is not None else call.status
        self._duration.record(call.duration, attributes)
        usage = {
            "input": sum(n for kind, n in call.tokens.items() if kind != "output"),
            "output": call.tokens["output"],
        }
        if any(usage.values()):
            for kind, count in usage.items():
                self._tokens.record(count, {**attributes, "gen_ai.token.type": kind})

    def on_flush(self, families: list[AnyFamily], deltas: list[SeriesDelta]) -> None:
        """Add a flush's counter deltas and latest gauge values."""
        kinds = {family.name: family for family in families}
        for delta in deltas:
            family = kinds.get(delta.family)
            if family is None or family.kind == "histogram":
                continue
            attributes = dict(delta.labels)
            if family.kind == "counter":
                counter = self._counters.get(family.name)
                if counter is None:
                    counter = self._counters[family.name] = self._meter.create_counter(
                        family.name, description=family.help
                    )
                counter.add(delta.value, attributes)
            else:
                gauge = self._gauges.get(family.name)
                if gauge is None:
                    gauge = self._gauges[family.name] = self._meter.create_gauge(
                        family.name, description=family.help
                    )
                gauge.set(delta.value, attributes)

    def shutdown(self) -> None:
        """Export what is pending and stop (at process exit)."""
        self.provider.shutdown()


def attach_otel(instrumentation: Instrumentation) -> OtelBridge | None:
    """An OtelBridge hooked to ``instrumentation`` when OTLP export is requested.

    Without the ``[otel]`` extra it logs once how to install it and returns None.
    """
    if not otlp_requested():
        return None
    try:
        bridge = OtelBridge()
    except ImportError:
        from loguru import logger

        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'assistant[otel]'"
        )
        return None
    instrumentation.llm_listeners.append(bridge.on_llm_call)
    return bridge
