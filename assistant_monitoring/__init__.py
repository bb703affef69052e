"""The observability toolkit for the assistant: settings, logging, metrics, health.

Public names are re-exported here lazily: ``import assistant_monitoring`` stays
cheap (the CLI imports it on every start), and a name's module is imported the
first time the name is used.
"""

from __future__ import annotations

from assistant_monitoring._lazy import resolve_export

TYPE_CHECKING = False  # not typing's: importing typing would cost every command ~5 ms
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "CannotCheckError": "assistant_monitoring.errors",
    "HealthUsageError": "assistant_monitoring.errors",
    "is_interruption": "assistant_monitoring.errors",
    "shown": "assistant_monitoring.errors",
    "Instrumentation": "assistant_monitoring.metrics",
    "MetricsRegistry": "assistant_monitoring.metrics",
    "MetricsStore": "assistant_monitoring.metrics",
    "PriceTable": "assistant_monitoring.metrics",
    "StoreError": "assistant_monitoring.metrics",
    "start_metrics": "assistant_monitoring.metrics",
    "current_runtime": "assistant_monitoring.metrics",
    "EXIT_CANNOT_CHECK": "assistant_monitoring.errors",
    "EXIT_FAILURE": "assistant_monitoring.errors",
    "EXIT_INTERRUPTED": "assistant_monitoring.errors",
    "EXIT_OK": "assistant_monitoring.errors",
    "EXIT_TERMINATED": "assistant_monitoring.errors",
    "EXIT_USAGE": "assistant_monitoring.errors",
    "LoadedSettings": "assistant_monitoring.settings",
    "LogDirectoryError": "assistant_monitoring.errors",
    "LoggingHandle": "assistant_monitoring.logs",
    "MonitoringError": "assistant_monitoring.errors",
    "ProfileError": "assistant_monitoring.errors",
    "Settings": "assistant_monitoring.settings",
    "SettingsError": "assistant_monitoring.errors",
    "UsageError": "assistant_monitoring.errors",
    "configure_from_settings": "assistant_monitoring.logs",
    "configure_logging": "assistant_monitoring.logs",
    "load_settings": "assistant_monitoring.settings",
    "log_classification": "assistant_monitoring.logs",
    "log_context": "assistant_monitoring.logs",
    "log_error": "assistant_monitoring.logs",
    "log_pipeline_summary": "assistant_monitoring.logs",
    "read_logs": "assistant_monitoring.logs.reader",
    "redact_text": "assistant_monitoring.redact",
}

__all__ = [  # noqa: RUF022 - kept in step with _EXPORTS by tests/test_exported_members.py
    "__version__",
    "CannotCheckError",
    "HealthUsageError",
    "is_interruption",
    "shown",
    "EXIT_CANNOT_CHECK",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Instrumentation",
    "LoadedSettings",
    "LogDirectoryError",
    "LoggingHandle",
    "MetricsRegistry",
    "MetricsStore",
    "MonitoringError",
    "PriceTable",
    "ProfileError",
    "Settings",
    "SettingsError",
    "StoreError",
    "UsageError",
    "configure_from_settings",
    "configure_logging",
    "current_runtime",
    "load_settings",
    "log_classification",
    "log_context",
    "log_error",
    "log_pipeline_summary",
    "read_logs",
    "redact_text",
    "start_metrics",
]


def __getattr__(name: str) -> Any:
    return resolve_export(__name__, globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
