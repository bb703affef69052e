"""Metrics: in-process collector, instrumentation API, cross-process store, exposition."""

from assistant_monitoring.metrics.exposition import render_exposition
from assistant_monitoring.metrics.families import AssistantMetrics, declare_families
from assistant_monitoring.metrics.instrument import Instrumentation, LlmAttempt, LlmCall, Timer
from assistant_monitoring.metrics.query import WindowData, query_window
from assistant_monitoring.metrics.registry import Counter, Gauge, Histogram, MetricsRegistry
from assistant_monitoring.metrics.runtime import (
    MetricsRuntime,
    current_runtime,
    start_metrics,
    stop_metrics,
)
from assistant_monitoring.metrics.store import MetricsStore, StoreError
from assistant_monitoring.pricing import ModelPrice, PriceTable

__all__ = [
    "AssistantMetrics",
    "Counter",
    "Gauge",
    "Histogram",
    "Instrumentation",
    "LlmAttempt",
    "LlmCall",
    "MetricsRegistry",
    "MetricsRuntime",
    "MetricsStore",
    "ModelPrice",
    "PriceTable",
    "StoreError",
    "Timer",
    "WindowData",
    "current_runtime",
    "declare_families",
    "query_window",
    "render_exposition",
    "start_metrics",
    "stop_metrics",
]
