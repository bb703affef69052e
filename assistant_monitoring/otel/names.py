"""The names our telemetry goes out under over OTLP: GenAI conventions and our own.

The GenAI semantic conventions (open-telemetry/semantic-conventions-genai) are all
at Development status and still move. The default is the names released in
``opentelemetry-semantic-conventions``; ``OTEL_SEMCONV_STABILITY_OPT_IN`` containing
``gen_ai_latest_experimental`` (the variable's standard opt-in value, a
comma-separated list) switches to the newer ones: the ``gen_ai.client.inference.*``
token counters and per-operation histograms proposed in semantic-conventions-genai
#374, in place of the ``gen_ai.client.token.usage`` histogram.

Our own counter and gauge families are named for Prometheus (``_total``, the unit
in the name). Over OTLP they go out under OTel names: dotted namespace, no
``_total``, the unit in the unit field, chosen so that a collector's Prometheus
exporter (which drops ``{annotation}`` units, spells ``s`` and ``By`` as
``_seconds`` and ``_bytes``, and adds ``_total`` to counters) gives back the very
names of ``monitor serve``'s ``/metrics``: ``assistant.pipeline_runs`` ({run})
becomes ``assistant_pipeline_runs_total``, so the alert and recording rules and the
Grafana dashboard work on either path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"

DURATION = "gen_ai.client.operation.duration"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"  # released: one histogram, gen_ai.token.type

# The newer names (semantic-conventions-genai #374): running totals per token
# category, and per-operation histograms of input and output.
INFERENCE_USAGE = {
    "input": "gen_ai.client.inference.usage.input_tokens",  # includes cached tokens
    "output": "gen_ai.client.inference.usage.output_tokens",  # includes reasoning
    "cache_read": "gen_ai.client.inference.usage.cache_read.input_tokens",
    "cache_write": "gen_ai.client.inference.usage.cache_write.input_tokens",
    "reasoning": "gen_ai.client.inference.usage.reasoning.output_tokens",
}
INFERENCE_OPERATION = {
    "input": "gen_ai.client.inference.operation.input_tokens",
    "output": "gen_ai.client.inference.operation.output_tokens",
}

# The advisory bucket boundaries of the GenAI conventions for time to first chunk (s).
FIRST_CHUNK_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


def latest_experimental(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the newest GenAI names."""
    env = os.environ if environ is None else environ
    values = {part.strip().lower() for part in env.get(OPT_IN_VARIABLE, "").split(",")}
    return LATEST_EXPERIMENTAL in values


@dataclass(frozen=True)
class OtelName:
    """One of our families as OTel names it."""

    name: str
    unit: str


# Every counter and gauge family, named on purpose (a test checks none is missing).
OWN_FAMILIES = {
    "assistant_pipeline_runs_total": OtelName("assistant.pipeline_runs", "{run}"),
    "assistant_stage_runs_total": OtelName("assistant.stage_runs", "{run}"),
    "assistant_db_queries_total": OtelName("assistant.db_queries", "{query}"),
    "assistant_llm_requests_total": OtelName("assistant.llm_requests", "{request}"),
    "assistant_llm_tokens_total": OtelName("assistant.llm_tokens", "{token}"),
    "assistant_llm_cost_usd_total": OtelName("assistant.llm_cost_usd", "{USD}"),
    "assistant_llm_retries_total": OtelName("assistant.llm_retries", "{retry}"),
    "assistant_errors_total": OtelName("assistant.errors", "{error}"),
    # No unit: a gauge with unit "1" comes out of Prometheus translation as "_ratio".
    "assistant_circuit_breaker_state": OtelName("assistant.circuit_breaker_state", ""),
    "assistant_health_status": OtelName("assistant.health_status", ""),
    "assistant_metrics_errors_total": OtelName("assistant.metrics_errors", "{error}"),
    "assistant_metric_invalid_labels_total": OtelName("assistant.metric_invalid_labels", "{label}"),
    "assistant_metric_overflow_total": OtelName("assistant.metric_overflow", "{series}"),
    # Not the process semantic conventions' process.memory.usage / process.cpu.time:
    # those would reach Prometheus as other names than the rules and dashboards use.
    "process_resident_memory_bytes": OtelName("process.resident_memory", "By"),
    "process_cpu_seconds_total": OtelName("process.cpu", "s"),
}


def otel_name(family: str) -> OtelName:
    """The OTel name of one of our families (a rule for any not in the table)."""
    known = OWN_FAMILIES.get(family)
    if known is not None:
        return known
    base = family.removesuffix("_total")
    unit = "1"
    for suffix, symbol in (("_seconds", "s"), ("_bytes", "By"), ("_usd", "USD")):
        if base.endswith(suffix):
            base, unit = base.removesuffix(suffix), symbol
    namespace, _, rest = base.partition("_")
    return OtelName(f"{namespace}.{rest}" if rest else namespace, unit)
