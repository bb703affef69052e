"""Which profile, its ``.env`` file and its defaults: the settings layers before validation.

Standard library only, so the commands that must start fast (``monitor
statusline``) can find the files a profile uses without importing pydantic. The
loader (:mod:`assistant_monitoring.settings.loader`) builds on these and validates;
:func:`raw_setting` is the fast path's unvalidated read of one value, and callers
fall back to the loader whenever a value does not parse.

No pathlib and no typing here (each costs milliseconds the statusline does not
have): paths are strings, and the loader wraps them in Path.
"""

from __future__ import annotations

import os

from assistant_monitoring.errors import ProfileError
from assistant_monitoring.settings.envfile import read_env_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows it)
if TYPE_CHECKING:
    from collections.abc import Mapping

PROFILES = ("development", "staging", "production", "test")
DEFAULT_PROFILE = "development"

# Per-profile defaults, mirrored (for people to read and edit) by the committed
# .env.<profile> templates. Keep the two in step.
PROFILE_DEFAULTS: dict[str, dict[str, str]] = {
    "development": {
        "LOG_LEVEL": "DEBUG",
        "ENABLE_TRACING": "true",
        "ENABLE_METRICS": "true",
        "DEBUG_MODE": "true",
        "LLM_MODEL": "claude-haiku-4-5",
    },
    "staging": {
        "LOG_LEVEL": "INFO",
        "ENABLE_TRACING": "true",
        "ENABLE_METRICS": "true",
        "LLM_MODEL": "claude-sonnet-4-5",
    },
    "production": {
        "LOG_LEVEL": "INFO",
        "ENABLE_TRACING": "false",
        "ENABLE_METRICS": "true",
        "LLM_MODEL": "claude-sonnet-4-5",
        "ASSISTANT_DATA_DIR": "/var/lib/assistant",
    },
    "test": {
        "LOG_LEVEL": "DEBUG",
        "ENABLE_METRICS": "true",
        "LLM_MODEL": "claude-haiku-4-5",
    },
}


def default_data_dir(profile: str, environ: Mapping[str, str]) -> str:
    """Where a profile keeps its files when ``ASSISTANT_DATA_DIR`` is not set."""
    if profile in PROFILE_DEFAULTS and "ASSISTANT_DATA_DIR" in PROFILE_DEFAULTS[profile]:
        return PROFILE_DEFAULTS[profile]["ASSISTANT_DATA_DIR"]
    xdg = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(xdg, "assistant", profile)


def resolve_profile(explicit: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """Return ``(profile, chosen_explicitly)``; raise ProfileError for an unknown name."""
    chosen = explicit or environ.get("ASSISTANT_ENV") or None
    profile = (chosen or DEFAULT_PROFILE).strip().lower()
    if profile not in PROFILES:
        origin = "--profile" if explicit else "ASSISTANT_ENV"
        raise ProfileError(
            f"Unknown profile '{chosen}' ({origin}): choose one of {', '.join(PROFILES)}"
        )
    return profile, chosen is not None


def find_env_file(profile: str, environ: Mapping[str, str], *, explicit: bool) -> str | None:
    """Locate the profile's ``.env`` file, or None when running on defaults."""
    named = environ.get("ASSISTANT_ENV_FILE", "").strip()
    if named.lower() == "none":
        return None
    if named:
        path = os.path.expanduser(named)
        if not os.path.exists(path):
            raise ProfileError(
                f"ASSISTANT_ENV_FILE points to {path}, which does not exist: "
                "fix the path, or set ASSISTANT_ENV_FILE=none to use the environment only"
            )
        return path
    directory = environ.get("ASSISTANT_CONFIG_DIR") or os.getcwd()
    path = os.path.join(directory, f".env.{profile}")
    if os.path.exists(path):
        return path
    if explicit:
        raise ProfileError(
            f"Profile '{profile}' needs {path}, which does not exist: copy it from the "
            "repository's template, set ASSISTANT_CONFIG_DIR to the folder holding it, "
            "or set ASSISTANT_ENV_FILE=none to use the environment only"
        )
    return None


class RawLayers:
    """The values of one profile as layered (defaults, file, environment), unvalidated."""

    def __init__(
        self, profile: str | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.profile, explicit = resolve_profile(profile, self.environ)
        self.env_file = find_env_file(self.profile, self.environ, explicit=explicit)
        self._file = read_env_file(self.env_file) if self.env_file is not None else {}

    def get(self, key: str) -> str | None:
        """The value ``key`` has after layering, None when unset (empty is unset)."""
        for layer in (self.environ, self._file, PROFILE_DEFAULTS[self.profile]):
            value = layer.get(key, "")
            if value != "":
                return value
        return None

    def path(self, key: str, default: str) -> str:
        """A path setting as the loader reads it (``~`` expanded, made absolute)."""
        value = self.get(key)
        return os.path.abspath(os.path.expanduser(value)) if value else default

    def data_dir(self) -> str:
        """ASSISTANT_DATA_DIR, or the profile's default."""
        return self.path("ASSISTANT_DATA_DIR", default_data_dir(self.profile, self.environ))
