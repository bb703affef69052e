"""Choose a profile, layer its values and validate them, remembering where each came from.

Precedence, lowest to highest:

1. defaults: the model's defaults, overridden by the profile's own defaults
   (:data:`PROFILE_DEFAULTS`: development logs at DEBUG with tracing on, production
   logs at INFO with metrics on and keeps its data under ``/var/lib/assistant``);
2. the profile's file, ``.env.<profile>``: looked up in ``ASSISTANT_CONFIG_DIR``,
   else the current directory; ``ASSISTANT_ENV_FILE`` names a file directly
   (``none`` means "environment only", for containers);
3. the process environment.

An empty value (``KEY=``) at any layer means "not set here". The profile is chosen
by ``--profile/-e``, else ``ASSISTANT_ENV``, else ``development``. When the profile
was chosen explicitly, its file must exist: deploying ``production`` without
``.env.production`` is a mistake worth stopping for. The implicit development
profile runs on its defaults when the file is absent, so a fresh install just works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assistant_monitoring.errors import SettingsError
from assistant_monitoring.redact import (
    redact_text,
    register_header_secrets,
    register_secret,
    register_url_secrets,
    url_password,
)
from assistant_monitoring.settings.envfile import read_env_file
from assistant_monitoring.settings.model import (
    Settings,
    env_names,
    is_secret,
)
from assistant_monitoring.settings.profiles import (
    PROFILE_DEFAULTS,
    default_data_dir,
    find_env_file,
    resolve_profile,
)

SOURCE_DEFAULT = "default"
SOURCE_PROFILE_DEFAULT = "profile default"
SOURCE_ENVIRONMENT = "environment"
SOURCE_DERIVED = "derived (data dir)"

# Provider-specific key variables, used when LLM_API_KEY is not set.
_PROVIDER_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_SETTINGS_PREFIXES = (
    "LLM_",
    "DATABASE_",
    "LOG_",
    "MONITOR",
    "ENABLE_",
    "ASSISTANT_",
    "HEALTH_",
    "BREAKER_",
    "CLASSIFIER_",
    "ALERT_",
)
_LOADER_ONLY_ENV = {"ASSISTANT_CONFIG_DIR", "ASSISTANT_ENV_FILE"}
# Settings that are URLs: a password in their userinfo is a secret like LLM_API_KEY.
_URL_SETTINGS = ("LLM_BASE_URL", "ALERT_WEBHOOK_URL")
# Variables read by others (the SDKs, OpenTelemetry's exporters) that hold credentials:
# registered so that whatever quotes them (an SDK error, a log line) masks them.
_FOREIGN_SECRET_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
_FOREIGN_URL_ENV = tuple(
    f"OTEL_EXPORTER_OTLP_{signal}ENDPOINT" for signal in ("", "TRACES_", "METRICS_", "LOGS_")
)
_FOREIGN_HEADER_ENV = tuple(
    f"OTEL_EXPORTER_OTLP_{signal}HEADERS" for signal in ("", "TRACES_", "METRICS_", "LOGS_")
)


@dataclass(frozen=True)
class LoadedSettings:
    """Validated settings plus what ``config show`` needs to explain them."""

    settings: Settings
    profile: str
    env_file: Path | None
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def load_settings(
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Load and validate the settings of ``profile`` (or the one the environment names).

    Raises :class:`ProfileError` when the profile cannot be loaded and
    :class:`SettingsError` listing every invalid field at once.
    """
    env = os.environ if environ is None else environ
    # The environment's secrets first: an error before the layering (no such profile,
    # an unreadable .env file) may still be printed next to a pasted key.
    _register_secrets(env, env)
    name, explicit = resolve_profile(profile, env)
    found = find_env_file(name, env, explicit=explicit)
    env_file = Path(found) if found is not None else None
    known = env_names()

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []

    for key, value in PROFILE_DEFAULTS[name].items():
        values[key], sources[key] = value, SOURCE_PROFILE_DEFAULT
    values["ASSISTANT_DATA_DIR"] = default_data_dir(name, env)
    sources.setdefault("ASSISTANT_DATA_DIR", SOURCE_DEFAULT)

    if env_file is not None:
        file_values = read_env_file(env_file)
        for key, value in file_values.items():
            if key in known and key != "ASSISTANT_ENV":
                if value != "":
                    values[key], sources[key] = value, env_file.name
            elif key.startswith(_SETTINGS_PREFIXES) and key not in _LOADER_ONLY_ENV:
                warnings.append(f"{env_file.name}: unknown setting {key} (ignored; a typo?)")

    for key in known:
        if key == "ASSISTANT_ENV":
            continue
        value = env.get(key, "")
        if value != "":
            values[key], sources[key] = value, SOURCE_ENVIRONMENT

    provider = values.get("LLM_PROVIDER", "anthropic").strip().lower()
    fallback = _PROVIDER_KEY_ENV.get(provider)
    if "LLM_API_KEY" not in values and fallback and env.get(fallback):
        values["LLM_API_KEY"] = env[fallback]
        sources["LLM_API_KEY"] = f"{SOURCE_ENVIRONMENT} ({fallback})"

    # Before validation: an error message quoting a value ("(got ...)") must already
    # know every secret of this profile, the invalid ones included.
    _register_secrets(values, env)
    settings = _validate(name, values, known, env_file)
    warnings.extend(_credential_warnings(settings))
    for key in known:
        if key not in sources:
            derived = key in {"DATABASE_PATH", "LOG_DIR", "MONITORING_DB_PATH"}
            sources[key] = SOURCE_DERIVED if derived else SOURCE_DEFAULT
    sources["ASSISTANT_ENV"] = "--profile/ASSISTANT_ENV" if explicit else SOURCE_DEFAULT
    settings._sources = dict(sources)
    settings._env_file = env_file.absolute() if env_file is not None else None
    return LoadedSettings(settings, name, env_file, sources, warnings)


def _register_secrets(values: Mapping[str, str], env: Mapping[str, str]) -> None:
    """Mask this profile's secrets in every sink from now on (see redact.py)."""
    for key in ("LLM_API_KEY", "MONITOR_TOKEN"):
        register_secret(values.get(key, "").strip() or None)
    for key in _FOREIGN_SECRET_ENV:
        register_secret(env.get(key, "").strip() or None)
    for key in _URL_SETTINGS:
        register_url_secrets(values.get(key))
    for key in _FOREIGN_URL_ENV:
        register_url_secrets(env.get(key))
    for key in _FOREIGN_HEADER_ENV:
        register_header_secrets(env.get(key))


def _credential_warnings(settings: Settings) -> list[str]:
    """What a URL setting's userinfo really does, said where config check shows it."""
    if url_password(settings.llm.base_url) is None:
        return []
    # httpx turns URL userinfo into HTTP Basic auth, which replaces the SDKs' own
    # Authorization header: the provider never sees LLM_API_KEY.
    return [
        "LLM_BASE_URL holds a user name and password: the SDKs send them as HTTP Basic "
        "auth in place of LLM_API_KEY (only a gateway that wants Basic auth accepts "
        "that); they are masked as *** wherever the URL is shown"
    ]


def _validate(
    profile: str,
    values: dict[str, str],
    known: dict[str, tuple[str | None, str]],
    env_file: Path | None,
) -> Settings:
    nested: dict[str, Any] = {"ASSISTANT_ENV": profile}
    for key, value in values.items():
        group, _field = known[key]
        if group is None:
            nested[key] = value
        else:
            nested.setdefault(group, {})[key] = value
    try:
        settings = Settings(**nested)
    except ValidationError as exc:
        problems = [_describe(error, values) for error in exc.errors()]
        raise SettingsError(
            sorted(set(problems)), profile=profile, env_file=str(env_file) if env_file else None
        ) from None
    problems = _unusable_paths(settings)
    if problems:
        raise SettingsError(problems, profile=profile, env_file=str(env_file) if env_file else None)
    return settings


def _unusable_paths(settings: Settings) -> list[str]:
    """Paths that can never work: a file where a directory must be, or the reverse.

    A missing directory is fine (it is created when needed); a file in its way is
    a mistake in the settings, named here once (for the first setting it blocks)
    instead of by every command's own failure further on.
    """
    blocked: dict[Path, str] = {}
    directories = (
        ("ASSISTANT_DATA_DIR", settings.data_dir),
        ("LOG_DIR", settings.log_dir),
        ("DATABASE_PATH", settings.database_path.parent),
        ("MONITORING_DB_PATH", settings.monitoring_db_path.parent),
    )
    for env_name, directory in directories:
        for candidate in (directory, *directory.parents):
            if candidate.exists():
                if not candidate.is_dir() and candidate not in blocked:
                    blocked[candidate] = (
                        f"{env_name}: {candidate} is a file, not a directory (got '{directory}')"
                    )
                break
    problems = list(blocked.values())
    for env_name, path in (
        ("DATABASE_PATH", settings.database_path),
        ("MONITORING_DB_PATH", settings.monitoring_db_path),
    ):
        if path.is_dir():
            problems.append(f"{env_name}: is a directory, not a database file (got '{path}')")
    return problems


def _describe(error: Any, values: Mapping[str, str]) -> str:
    env_name = str(error["loc"][-1]) if error["loc"] else "settings"
    problem = _problem_text(error)
    raw = values.get(env_name)
    if raw is None:
        return f"{env_name}: {problem}"
    # A value that is not a secret setting may still hold one (a URL's password, a
    # key pasted into LLM_MODEL): the shared rule masks it.
    shown = "********" if is_secret(env_name) else redact_text(raw)
    return f"{env_name}: {problem} (got '{shown}')"


def _problem_text(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    comparisons = {
        "less_than_equal": ("<=", "le"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "greater_than": (">", "gt"),
    }
    if kind in comparisons:
        symbol, key = comparisons[kind]
        return f"must be {symbol} {_number(ctx.get(key))}"
    simple = {
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "bool_parsing": "must be true or false",
        "string_too_short": "must not be empty",
        "path_type": "must be a file system path",
        "extra_forbidden": "is not a known setting",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _number(value: object) -> object:
    # "must be <= 2", not "must be <= 2.0".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
