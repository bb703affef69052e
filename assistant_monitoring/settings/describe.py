"""Describe effective settings for people and scripts (``assistant config show``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from assistant_monitoring.redact import mask_secret, redact_text
from assistant_monitoring.settings.loader import LoadedSettings
from assistant_monitoring.settings.model import env_names


@dataclass(frozen=True)
class SettingRow:
    """One setting as ``config show`` prints it; secrets already masked."""

    group: str
    env_name: str
    value: str | int | float | bool | None
    source: str
    secret: bool

    @property
    def display(self) -> str:
        """The value as text: booleans lower-case, unset values explicit."""
        if self.secret:
            return str(self.value)
        if self.value is None:
            return "(not set)"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def describe_settings(loaded: LoadedSettings) -> list[SettingRow]:
    """Every setting with its effective value and where that value came from."""
    rows: list[SettingRow] = []
    settings = loaded.settings
    for env_name, (group, field) in env_names().items():
        owner: Any = settings if group is None else getattr(settings, group)
        value = getattr(owner, field)
        secret = isinstance(value, SecretStr) or env_name in {"LLM_API_KEY", "MONITOR_TOKEN"}
        if secret:
            shown: Any = mask_secret(value.get_secret_value() if value is not None else None)
        elif isinstance(value, Path):
            shown = str(value)
        elif isinstance(value, str):
            # Not a secret setting, but it can hold one: a URL's password (shown as
            # http://user:***@host), a key pasted into LLM_SYSTEM_PROMPT.
            shown = redact_text(value)
        else:
            shown = value
        rows.append(
            SettingRow(
                group=group or "general",
                env_name=env_name,
                value=shown,
                source=loaded.sources.get(env_name, "default"),
                secret=secret,
            )
        )
    return rows


def settings_as_json(loaded: LoadedSettings) -> dict[str, Any]:
    """The ``config show --json`` document (stable field names)."""
    return {
        "profile": loaded.profile,
        "env_file": str(loaded.env_file) if loaded.env_file else None,
        "settings": {
            row.env_name: {"group": row.group, "value": row.value, "source": row.source}
            for row in describe_settings(loaded)
        },
        "warnings": loaded.warnings,
    }
