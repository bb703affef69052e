"""The metric families dashboards and alert rules depend on (names fixed in DESIGN.md).

Identifiers (conversation and message ids, prompts) are never labels: they go to
pipeline runs and logs. Every label here takes a small, closed set of values, or
names the code defines; each has a rule (``metrics/labels.py``) that the registry
enforces, recording a value that breaks it under ``__invalid__``.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant_monitoring.metrics.labels import (
    CODE_NAME,
    ERROR_CONTEXT,
    ERROR_TYPE,
    MODEL,
    SERVICE,
    one_of,
)
from assistant_monitoring.metrics.registry import Counter, Gauge, Histogram, MetricsRegistry
from assistant_monitoring.statuses import FINAL_STATUSES, LlmStatus

# OpenTelemetry GenAI semantic-convention boundaries.
GENAI_DURATION_BUCKETS = tuple(round(0.01 * 2**k, 6) for k in range(14))  # 0.01 .. 81.92 s
GENAI_TOKEN_BUCKETS = tuple(float(4**k) for k in range(14))  # 1 .. 67108864
PIPELINE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

DB_OPERATIONS = ("select", "insert", "update", "delete", "other")
# The billed token types (each token in exactly one). Reasoning tokens are part of
# output, so they are no type here: summing the types must give the tokens billed.
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
# How a run or a stage ended: exactly one of these, everywhere (metrics, runs, logs).
RUN_STATUSES = FINAL_STATUSES
LLM_STATUSES = tuple(LlmStatus)
PROVIDERS = ("anthropic", "openai")

_RUN = {"status": one_of(*RUN_STATUSES)}
_STAGE = {"stage": CODE_NAME}
_CLASSIFIER = {"classifier": CODE_NAME}
_OPERATION = {"operation": one_of(*DB_OPERATIONS)}
_LLM = {"provider": one_of(*PROVIDERS), "model": MODEL}


@dataclass(frozen=True)
class AssistantMetrics:
    """Handles on every family, declared on one registry."""

    registry: MetricsRegistry
    pipeline_runs: Counter
    pipeline_duration: Histogram
    stage_runs: Counter
    stage_duration: Histogram
    classifier_duration: Histogram
    classifier_confidence: Histogram
    db_queries: Counter
    db_query_duration: Histogram
    llm_requests: Counter
    llm_duration: Histogram
    llm_ttft: Histogram
    llm_tokens: Counter
    llm_request_tokens: Histogram
    llm_cost: Counter
    llm_retries: Counter
    errors: Counter
    breaker_state: Gauge
    health_status: Gauge
    process_memory: Gauge
    process_cpu: Counter
    metrics_errors: Counter


def declare_families(registry: MetricsRegistry) -> AssistantMetrics:
    """Declare the assistant's families on ``registry`` (idempotent)."""
    r = registry
    return AssistantMetrics(
        registry=r,
        pipeline_runs=r.counter(
            "assistant_pipeline_runs_total", "Pipeline runs by outcome.", ["status"], rules=_RUN
        ),
        pipeline_duration=r.histogram(
            "assistant_pipeline_duration_seconds",
            "Wall time of a whole pipeline run.",
            buckets=PIPELINE_BUCKETS,
        ),
        stage_runs=r.counter(
            "assistant_stage_runs_total",
            "Pipeline stage runs by outcome.",
            ["stage", "status"],
            rules={**_STAGE, **_RUN},
        ),
        stage_duration=r.histogram(
            "assistant_stage_duration_seconds",
            "Wall time of a pipeline stage.",
            ["stage"],
            buckets=PIPELINE_BUCKETS,
            rules=_STAGE,
        ),
        classifier_duration=r.histogram(
            "assistant_classifier_duration_seconds",
            "Time a classifier took.",
            ["classifier"],
            buckets=FAST_BUCKETS,
            rules=_CLASSIFIER,
        ),
        classifier_confidence=r.histogram(
            "assistant_classifier_confidence",
            "Confidence (0-1) of classifier results.",
            ["classifier"],
            buckets=CONFIDENCE_BUCKETS,
            rules=_CLASSIFIER,
        ),
        db_queries=r.counter(
            "assistant_db_queries_total",
            "Database queries by operation.",
            ["operation"],
            rules=_OPERATION,
        ),
        db_query_duration=r.histogram(
            "assistant_db_query_duration_seconds",
            "Database query time.",
            ["operation"],
            buckets=FAST_BUCKETS,
            rules=_OPERATION,
        ),
        llm_requests=r.counter(
            "assistant_llm_requests_total",
            "LLM requests by outcome.",
            ["provider", "model", "status"],
            rules={**_LLM, "status": one_of(*LLM_STATUSES)},
        ),
        llm_duration=r.histogram(
            "assistant_llm_request_duration_seconds",
            "LLM request time, retries included (GenAI boundaries).",
            ["provider", "model"],
            buckets=GENAI_DURATION_BUCKETS,
            rules=_LLM,
        ),
        llm_ttft=r.histogram(
            "assistant_llm_time_to_first_token_seconds",
            "Time to the first streamed token.",
            ["provider", "model"],
            buckets=GENAI_DURATION_BUCKETS,
            rules=_LLM,
        ),
        llm_tokens=r.counter(
            "assistant_llm_tokens_total",
            "Tokens by type: input, output, cache_read, cache_write (5 min), cache_write_1h.",
            ["provider", "model", "type"],
            rules={**_LLM, "type": one_of(*TOKEN_TYPES)},
        ),
        llm_request_tokens=r.histogram(
            "assistant_llm_request_tokens",
            "Tokens per request by type (GenAI token.usage boundaries).",
            ["provider", "model", "type"],
            buckets=GENAI_TOKEN_BUCKETS,
            rules={**_LLM, "type": one_of(*TOKEN_TYPES)},
        ),
        llm_cost=r.counter(
            "assistant_llm_cost_usd_total",
            "Cost in US dollars from the price table (unpriced models are not counted).",
            ["provider", "model"],
            rules=_LLM,
        ),
        llm_retries=r.counter(
            "assistant_llm_retries_total",
            "LLM request retries.",
            ["provider"],
            rules={"provider": _LLM["provider"]},
        ),
        errors=r.counter(
            "assistant_errors_total",
            "Errors by type and context.",
            ["type", "context"],
            rules={"type": ERROR_TYPE, "context": ERROR_CONTEXT},
        ),
        breaker_state=r.gauge(
            "assistant_circuit_breaker_state",
            "1 for the breaker's current state, 0 for the others.",
            ["service", "state"],
            rules={"service": SERVICE, "state": one_of("closed", "open", "half_open")},
        ),
        health_status=r.gauge(
            "assistant_health_status",
            "Health check status: 1 healthy, 0.5 degraded, 0 unhealthy.",
            ["check"],
            rules={"check": CODE_NAME},
        ),
        process_memory=r.gauge(
            "process_resident_memory_bytes",
            "Resident memory of the most recent assistant process.",
            unit="bytes",
        ),
        process_cpu=r.counter(
            "process_cpu_seconds_total", "CPU time used by assistant processes (user + system)."
        ),
        metrics_errors=r.counter(
            "assistant_metrics_errors_total",
            "Failures of the metrics machinery itself (store unwritable, disk full).",
            ["operation"],
            rules={"operation": CODE_NAME},
        ),
    )
