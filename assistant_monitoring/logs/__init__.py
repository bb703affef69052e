"""Logging: configuration of the loguru sinks, structured events, and reading logs back.

Re-exports are lazy: `monitor logs` imports the reader without paying for loguru.
"""

from __future__ import annotations

from typing import Any

from assistant_monitoring._lazy import resolve_export

_EXPORTS = {
    "ERROR_FILE_NAME": "assistant_monitoring.logs.setup",
    "LOG_FILE_NAME": "assistant_monitoring.logs.setup",
    "LoggingHandle": "assistant_monitoring.logs.setup",
    "configure_from_settings": "assistant_monitoring.logs.setup",
    "configure_logging": "assistant_monitoring.logs.setup",
    "log_classification": "assistant_monitoring.logs.events",
    "log_context": "assistant_monitoring.logs.events",
    "log_error": "assistant_monitoring.logs.events",
    "log_pipeline_summary": "assistant_monitoring.logs.events",
}

__all__ = [
    "ERROR_FILE_NAME",
    "LOG_FILE_NAME",
    "LoggingHandle",
    "configure_from_settings",
    "configure_logging",
    "log_classification",
    "log_context",
    "log_error",
    "log_pipeline_summary",
]


def __getattr__(name: str) -> Any:
    return resolve_export(__name__, globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
