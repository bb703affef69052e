"""The settings model: five groups of validated fields, each bound to a flat env name.

Operators write flat names (``LLM_MODEL``, ``DATABASE_BUSY_TIMEOUT``), code reads
nested groups (``settings.llm.model``). Each field's alias *is* its environment
variable name, so a validation error points straight at the variable to fix.

Values are layered by :mod:`assistant_monitoring.settings.loader` (defaults, then
``.env.<profile>``, then the process environment); this module only validates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

MIN_TOKEN_LENGTH = 16
Profile = Literal["development", "staging", "production", "test"]
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(value: object) -> object:
    """Accept ``5242880``, ``5MB``, ``512KiB``, ``1G`` (binary multiples)."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError("must be a size such as 5MB, 512KB or a number of bytes")
    number, unit = match.groups()
    multiplier = _SIZE_UNITS[(unit or "").upper()[:1]]
    return int(float(number) * multiplier)


def _expand_path(value: object) -> object:
    if isinstance(value, str | Path) and str(value):
        return Path(os.path.expanduser(str(value))).absolute()
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


ByteSize = Annotated[int, BeforeValidator(parse_size)]
AbsolutePath = Annotated[Path, BeforeValidator(_expand_path)]
OptionalPath = Annotated[Path | None, BeforeValidator(_expand_path)]


class _Group(BaseModel):
    # populate_by_name lets code and tests build groups with Python names too.
    model_config = ConfigDict(populate_by_name=True, extra="forbid", validate_default=True)


class DatabaseSettings(_Group):
    """The assistant's own SQLite database (conversations and messages)."""

    path: OptionalPath = Field(None, alias="DATABASE_PATH")
    max_connections: int = Field(5, ge=1, le=100, alias="DATABASE_MAX_CONNECTIONS")
    busy_timeout_ms: int = Field(5000, ge=1000, alias="DATABASE_BUSY_TIMEOUT")
    # Conversations idle longer than this are deleted, with their messages (unset: never).
    retention_days: int | None = Field(None, ge=1, le=36500, alias="DATABASE_RETENTION_DAYS")


class LlmSettings(_Group):
    """Which model answers, and how the SDK reaches it."""

    provider: Annotated[Literal["anthropic", "openai"], BeforeValidator(_lower)] = Field(
        "anthropic", alias="LLM_PROVIDER"
    )
    model: str = Field("claude-sonnet-4-5", min_length=1, alias="LLM_MODEL")
    api_key: SecretStr | None = Field(None, alias="LLM_API_KEY")
    base_url: str | None = Field(None, alias="LLM_BASE_URL")
    max_tokens: int = Field(4096, ge=1, le=100_000, alias="LLM_MAX_TOKENS")
    temperature: float = Field(0.7, ge=0, le=2, alias="LLM_TEMPERATURE")
    timeout_seconds: float = Field(60.0, gt=0, le=3600, alias="LLM_TIMEOUT")
    max_retries: int = Field(3, ge=0, le=10, alias="LLM_MAX_RETRIES")
    max_retry_seconds: float = Field(60.0, gt=0, le=3600, alias="LLM_MAX_RETRY_SECONDS")
    system_prompt: str | None = Field(None, alias="LLM_SYSTEM_PROMPT")
    history_messages: int = Field(20, ge=0, le=500, alias="LLM_HISTORY_MESSAGES")

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        # A model name becomes a metric label, a run's column and a usage key, and is
        # sent in every request: a key pasted here would go everywhere. The loader has
        # registered LLM_API_KEY by now, so the configured key itself is caught too.
        from assistant_monitoring.redact import holds_secret

        if holds_secret(value):
            raise ValueError("looks like an API key, not a model name: put keys in LLM_API_KEY")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8089")
        return value.rstrip("/") if value else value


class LoggingSettings(_Group):
    """Console and JSON-lines file logging."""

    level: Annotated[
        Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(_upper),
    ] = Field("INFO", alias="LOG_LEVEL")
    # The terminal gets warnings and errors by default: a CLI that prints its
    # debug log between the answer's lines is unusable. --debug lowers it to DEBUG.
    console_level: Annotated[
        Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(_upper),
    ] = Field("WARNING", alias="LOG_CONSOLE_LEVEL")
    dir: OptionalPath = Field(None, alias="LOG_DIR")
    max_bytes: ByteSize = Field(5 * 1024 * 1024, ge=4096, alias="LOG_MAX_BYTES")
    max_files: int = Field(5, ge=1, le=1000, alias="LOG_MAX_FILES")
    log_content: bool = Field(False, alias="LOG_CONTENT")


class MonitoringSettings(_Group):
    """Where metrics are stored and where the monitor listens."""

    db_path: OptionalPath = Field(None, alias="MONITORING_DB_PATH")
    host: str = Field("127.0.0.1", min_length=1, alias="MONITOR_HOST")
    port: int = Field(9464, ge=1, le=65535, alias="MONITOR_PORT")
    token: SecretStr | None = Field(None, alias="MONITOR_TOKEN")
    # Each connection holds a file descriptor: keep it below `ulimit -n` (often 1024).
    max_connections: int = Field(512, ge=1, le=100_000, alias="MONITOR_MAX_CONNECTIONS")
    # Several `monitor serve` processes on one port (pm2's two instances, for reloads).
    reuse_port: bool = Field(False, alias="MONITOR_REUSE_PORT")
    # One INFO line per request served (method, path, status, time, query without
    # secrets). Off by default at every LOG_LEVEL: it costs each request, and it is a
    # line per client under a flood.
    access_log: bool = Field(False, alias="MONITOR_ACCESS_LOG")
    retention_days: int = Field(30, ge=1, le=3650, alias="MONITOR_RETENTION_DAYS")
    runs_retention_days: int = Field(30, ge=1, le=3650, alias="MONITOR_RUNS_RETENTION_DAYS")
    runs_max_rows: int = Field(1_000_000, ge=1, le=1_000_000_000, alias="MONITOR_RUNS_MAX_ROWS")
    # Where `assistant db backup` puts backups by default, and the storage check looks.
    backup_dir: OptionalPath = Field(None, alias="MONITOR_BACKUP_DIR")
    # The storage check degrades when the newest backup is older (unset: never).
    backup_max_age_days: float | None = Field(
        None, gt=0, le=3650, alias="MONITOR_BACKUP_MAX_AGE_DAYS"
    )
    flush_interval_seconds: float = Field(5.0, gt=0, le=3600, alias="MONITOR_FLUSH_INTERVAL")
    prices_file: OptionalPath = Field(None, alias="MONITOR_PRICES_FILE")
    # Where days and months begin for usage reports, budgets and the statusline: an
    # IANA name such as Europe/Paris; empty means the machine's local zone.
    timezone: str | None = Field(None, alias="MONITOR_TIMEZONE")
    otel_exit_timeout_ms: int = Field(50, ge=0, le=60_000, alias="MONITOR_OTEL_EXIT_TIMEOUT_MS")
    breaker_failure_threshold: int = Field(5, ge=1, le=1000, alias="BREAKER_FAILURE_THRESHOLD")
    breaker_reset_seconds: float = Field(60.0, gt=0, le=86400, alias="BREAKER_RESET_SECONDS")

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        # A short token can be guessed over the network it is meant to keep out.
        secret = value.get_secret_value() if value is not None else ""
        if value is not None and len(secret) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (make one with "
                "`openssl rand -hex 16`)"
            )
        if any(char.isspace() or not char.isprintable() for char in secret):
            raise ValueError("must not hold spaces or control characters (it is sent in a header)")
        if not secret.isascii():
            # Clients send headers as bytes: a UTF-8 header never equals it as we
            # would compare it, and no client could ever be let in.
            raise ValueError("must be ASCII: letters, digits, punctuation (it is sent in a header)")
        return value

    @field_validator("prices_file")
    @classmethod
    def _check_prices_file(cls, value: Path | None) -> Path | None:
        # Read whole here, so `config check` and every command refuse a bad table
        # (not a regular file, too big, half-written, a price that would store a
        # non-finite cost) before anything runs or writes. The loader adds
        # "(got ...)"; PriceFileProblem is a ValueError worded for that.
        if value is not None:
            from assistant_monitoring.pricing import read_price_file

            read_price_file(value)
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        from assistant_monitoring.errors import UsageError
        from assistant_monitoring.zones import resolve_zone

        try:
            resolve_zone(value.strip(), option="MONITOR_TIMEZONE")
        except UsageError as error:
            problem = str(error).removeprefix("MONITOR_TIMEZONE: ").rsplit(" (got ", 1)[0]
            raise ValueError(problem) from None
        return value.strip()


class HealthSettings(_Group):
    """Thresholds of the health checks."""

    check_timeout_seconds: float = Field(5.0, gt=0, le=120, alias="HEALTH_CHECK_TIMEOUT")
    database_slow_ms: float = Field(100.0, gt=0, alias="HEALTH_DB_SLOW_MS")
    llm_slow_seconds: float = Field(5.0, gt=0, alias="HEALTH_LLM_SLOW_SECONDS")
    memory_limit_bytes: ByteSize | None = Field(None, alias="HEALTH_MEMORY_LIMIT")
    memory_degraded_percent: float = Field(
        75.0, gt=0, le=100, alias="HEALTH_MEMORY_DEGRADED_PERCENT"
    )
    memory_unhealthy_percent: float = Field(
        90.0, gt=0, le=100, alias="HEALTH_MEMORY_UNHEALTHY_PERCENT"
    )
    disk_degraded_free_percent: float = Field(
        10.0, ge=0, le=100, alias="HEALTH_DISK_DEGRADED_FREE_PERCENT"
    )
    disk_unhealthy_free_percent: float = Field(
        5.0, ge=0, le=100, alias="HEALTH_DISK_UNHEALTHY_FREE_PERCENT"
    )


class AlertSettings(_Group):
    """Local alert rules (for users without Prometheus)."""

    window: str = Field("5m", alias="ALERT_WINDOW")
    pipeline_failure_ratio: float = Field(0.1, gt=0, le=1, alias="ALERT_PIPELINE_FAILURE_RATIO")
    pipeline_p95_seconds: float = Field(10.0, gt=0, alias="ALERT_PIPELINE_P95_SECONDS")
    stage_failures: int = Field(3, ge=1, alias="ALERT_STAGE_FAILURES")
    llm_error_ratio: float = Field(0.2, gt=0, le=1, alias="ALERT_LLM_ERROR_RATIO")
    minimum_runs: int = Field(5, ge=1, alias="ALERT_MINIMUM_RUNS")
    daily_budget_usd: float | None = Field(None, gt=0, alias="MONITOR_DAILY_BUDGET_USD")
    monthly_budget_usd: float | None = Field(None, gt=0, alias="MONITOR_MONTHLY_BUDGET_USD")
    webhook_url: str | None = Field(None, alias="ALERT_WEBHOOK_URL")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        # The parser the rules use, so what passes here cannot fail at evaluation.
        from assistant_monitoring.errors import UsageError
        from assistant_monitoring.timeparse import parse_duration

        try:
            parse_duration(value, option="ALERT_WINDOW")
        except UsageError as error:
            # The loader adds "(got ...)" itself.
            problem = str(error).removeprefix("ALERT_WINDOW: ").rsplit(" (got ", 1)[0]
            raise ValueError(problem) from None
        return value.strip()

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value or None


class FeatureSettings(_Group):
    """Feature switches."""

    tracing: bool = Field(False, alias="ENABLE_TRACING")
    metrics: bool = Field(True, alias="ENABLE_METRICS")
    flows: bool = Field(False, alias="ENABLE_FLOWS")
    parallel_classification: bool = Field(True, alias="ENABLE_PARALLEL_CLASSIFICATION")
    classifier_timeout_ms: float = Field(500.0, gt=0, le=60_000, alias="CLASSIFIER_TIMEOUT_MS")
    debug_mode: bool = Field(False, alias="DEBUG_MODE")


class Settings(BaseModel):
    """The effective settings of one profile. Build it with :func:`load_settings`.

    Paths left unset are derived from ``data_dir`` after validation, so every file the
    product writes lives under one directory unless a path says otherwise.

    A plain pydantic model, not pydantic-settings' BaseSettings: the loader does the
    layering (it must report each value's source and reject malformed .env lines,
    which pydantic-settings does not), and importing pydantic-settings costs ~140 ms
    (asyncio, pydantic.dataclasses, cloud providers) on every command.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    profile: Profile = Field("development", alias="ASSISTANT_ENV")
    data_dir: AbsolutePath = Field(alias="ASSISTANT_DATA_DIR")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    # Set by the loader: where each value came from, and the profile's file, so a
    # hint names the place a value can really be changed.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _env_file: Path | None = PrivateAttr(default=None)

    def where(self, env_name: str) -> str:
        """``LLM_API_KEY in /srv/.env.production or the environment``: where the value
        can be changed, naming only places that exist (never a file that is not there)."""
        source = self._sources.get(env_name, "default")
        if source.startswith("environment"):
            # "environment (ANTHROPIC_API_KEY)": the variable that gave the value.
            name = source[source.index("(") + 1 : -1] if "(" in source else env_name
            return f"{name} in the environment"
        if self._env_file is not None:
            if source == self._env_file.name:
                return f"{env_name} in {self._env_file}"
            return f"{env_name} in {self._env_file} or the environment"
        return f"{env_name} in the environment"

    def hint(self, env_name: str, *, verb: str = "set") -> str:
        """``set LLM_API_KEY in ...``: what to do with :meth:`where`'s answer."""
        return f"{verb} {self.where(env_name)}"

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if self.database.path is None:
            self.database.path = self.data_dir / "assistant.db"
        if self.logging.dir is None:
            self.logging.dir = self.data_dir / "logs"
        if self.monitoring.db_path is None:
            self.monitoring.db_path = self.data_dir / "monitoring.db"
        if self.monitoring.backup_dir is None:
            self.monitoring.backup_dir = self.data_dir / "backups"
        return self

    # Typed accessors for the derived paths (never None after validation).
    @property
    def database_path(self) -> Path:
        assert self.database.path is not None
        return self.database.path

    @property
    def backup_dir(self) -> Path:
        assert self.monitoring.backup_dir is not None
        return self.monitoring.backup_dir

    @property
    def log_dir(self) -> Path:
        assert self.logging.dir is not None
        return self.logging.dir

    @property
    def monitoring_db_path(self) -> Path:
        assert self.monitoring.db_path is not None
        return self.monitoring.db_path


GROUPS: dict[str, type[_Group]] = {
    "database": DatabaseSettings,
    "llm": LlmSettings,
    "logging": LoggingSettings,
    "monitoring": MonitoringSettings,
    "health": HealthSettings,
    "alerts": AlertSettings,
    "features": FeatureSettings,
}

TOP_LEVEL_ENV = {"profile": "ASSISTANT_ENV", "data_dir": "ASSISTANT_DATA_DIR"}


def env_names() -> dict[str, tuple[str | None, str]]:
    """Map every flat env name to ``(group or None, field name)``."""
    names: dict[str, tuple[str | None, str]] = {
        env: (None, field) for field, env in TOP_LEVEL_ENV.items()
    }
    for group, model in GROUPS.items():
        for field, info in model.model_fields.items():
            assert info.alias is not None
            names[info.alias] = (group, field)
    return names


def is_secret(env_name: str) -> bool:
    """Whether the variable holds a secret (never printed, masked in errors)."""
    group_field = env_names().get(env_name)
    if group_field is None:
        # _HEADERS: OTEL_EXPORTER_OTLP_HEADERS and kin carry Authorization values.
        return env_name.endswith(("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_HEADERS"))
    group, field = group_field
    if group is None:
        return False
    annotation: Any = GROUPS[group].model_fields[field].annotation
    return "SecretStr" in str(annotation)
