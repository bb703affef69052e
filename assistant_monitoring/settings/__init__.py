"""Environment profiles: layered, pydantic-validated settings with the source of every value.

Names are re-exported lazily, so the standard-library-only modules here
(``envfile``, ``profiles``) can be imported for ``monitor statusline`` without
importing pydantic.
"""

from __future__ import annotations

from assistant_monitoring._lazy import resolve_export

TYPE_CHECKING = False  # not typing's: importing typing costs the statusline ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from assistant_monitoring.settings.loader import LoadedSettings, load_settings
    from assistant_monitoring.settings.model import (
        DatabaseSettings,
        FeatureSettings,
        LlmSettings,
        LoggingSettings,
        MonitoringSettings,
        Settings,
    )
    from assistant_monitoring.settings.profiles import PROFILE_DEFAULTS, PROFILES

_EXPORTS = {
    "PROFILES": "assistant_monitoring.settings.profiles",
    "PROFILE_DEFAULTS": "assistant_monitoring.settings.profiles",
    "LoadedSettings": "assistant_monitoring.settings.loader",
    "load_settings": "assistant_monitoring.settings.loader",
    "DatabaseSettings": "assistant_monitoring.settings.model",
    "FeatureSettings": "assistant_monitoring.settings.model",
    "LlmSettings": "assistant_monitoring.settings.model",
    "LoggingSettings": "assistant_monitoring.settings.model",
    "MonitoringSettings": "assistant_monitoring.settings.model",
    "Settings": "assistant_monitoring.settings.model",
}

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


def __getattr__(name: str) -> Any:
    return resolve_export(__name__, globals(), _EXPORTS, name)
