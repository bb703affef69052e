"""Environment profiles: layered, pydantic-validated settings with the source of every value."""

from assistant_monitoring.settings.loader import (
    PROFILE_DEFAULTS,
    LoadedSettings,
    load_settings,
)
from assistant_monitoring.settings.model import (
    PROFILES,
    DatabaseSettings,
    FeatureSettings,
    LlmSettings,
    LoggingSettings,
    MonitoringSettings,
    Settings,
)

__all__ = [
    "PROFILES",
    "PROFILE_DEFAULTS",
    "DatabaseSettings",
    "FeatureSettings",
    "LlmSettings",
    "LoadedSettings",
    "LoggingSettings",
    "MonitoringSettings",
    "Settings",
    "load_settings",
]
