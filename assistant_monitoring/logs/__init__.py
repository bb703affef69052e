"""Logging: configuration of the loguru sinks, structured events, and reading logs back."""

from assistant_monitoring.logs.events import (
    log_classification,
    log_context,
    log_error,
    log_pipeline_summary,
)
from assistant_monitoring.logs.setup import (
    ERROR_FILE_NAME,
    LOG_FILE_NAME,
    LoggingHandle,
    configure_from_settings,
    configure_logging,
)

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
