"""Profiles: selection, precedence, sources, validation of every field at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant_monitoring.errors import ProfileError, SettingsError
from assistant_monitoring.redact import redact_text
from assistant_monitoring.settings import PROFILE_DEFAULTS, PROFILES, load_settings
from assistant_monitoring.settings.envfile import read_env_file
from assistant_monitoring.settings.model import env_names
from tests.conftest import REPO_ROOT


def write_env(directory: Path, profile: str, text: str) -> Path:
    path = directory / f".env.{profile}"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_default_then_file_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(tmp_path, "staging", "LLM_MODEL=from-file\nLOG_LEVEL=ERROR\nLLM_MAX_TOKENS=100\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_MAX_TOKENS", "200")
    loaded = load_settings("staging")
    settings = loaded.settings
    assert settings.profile == "staging"
    assert settings.llm.model == "from-file"
    assert settings.llm.max_tokens == 200
    assert settings.llm.temperature == 0.7
    assert loaded.sources["LLM_MODEL"] == ".env.staging"
    assert loaded.sources["LLM_MAX_TOKENS"] == "environment"
    assert loaded.sources["LLM_TEMPERATURE"] == "default"
    assert loaded.sources["ENABLE_TRACING"] == "profile default"


def test_profile_comes_from_flag_then_assistant_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_ENV", "staging")
    assert load_settings().profile == "staging"
    assert load_settings("test").profile == "test"
    monkeypatch.delenv("ASSISTANT_ENV")
    assert load_settings().profile == "development"


def test_every_file_the_product_writes_is_under_the_data_dir(data_dir: Path) -> None:
    settings = load_settings().settings
    assert settings.data_dir == data_dir
    assert settings.database_path == data_dir / "assistant.db"
    assert settings.log_dir == data_dir / "logs"
    assert settings.monitoring_db_path == data_dir / "monitoring.db"


def test_explicit_paths_override_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "a.db"))
    monkeypatch.setenv("LOG_DIR", "~/somewhere/logs")
    monkeypatch.setenv("MONITORING_DB_PATH", str(tmp_path / "m.db"))
    settings = load_settings().settings
    assert settings.database_path == tmp_path / "a.db"
    assert settings.log_dir == Path("~/somewhere/logs").expanduser()
    assert settings.monitoring_db_path == tmp_path / "m.db"


def test_all_problems_reported_at_once_with_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {
        "LLM_TEMPERATURE": "5",
        "DATABASE_MAX_CONNECTIONS": "101",
        "DATABASE_BUSY_TIMEOUT": "999",
        "LLM_MAX_TOKENS": "0",
        "LLM_PROVIDER": "gemini",
        "LOG_LEVEL": "LOUD",
        "MONITOR_PORT": "http",
    }
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    problems = caught.value.problems
    assert "LLM_TEMPERATURE: must be <= 2 (got '5')" in problems
    assert "DATABASE_MAX_CONNECTIONS: must be <= 100 (got '101')" in problems
    assert "DATABASE_BUSY_TIMEOUT: must be >= 1000 (got '999')" in problems
    assert "LLM_MAX_TOKENS: must be >= 1 (got '0')" in problems
    assert "LLM_PROVIDER: must be 'anthropic' or 'openai' (got 'gemini')" in problems
    assert any(p.startswith("LOG_LEVEL: must be 'TRACE'") for p in problems)
    assert "MONITOR_PORT: must be a whole number (got 'http')" in problems
    assert len(problems) == len(bad)
    assert caught.value.exit_code == 2


def test_values_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("LLM_PROVIDER", "OpenAI")
    monkeypatch.setenv("LOG_MAX_BYTES", "2MB")
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:8089/v1/")
    settings = load_settings().settings
    assert settings.logging.level == "WARNING"
    assert settings.llm.provider == "openai"
    assert settings.logging.max_bytes == 2 * 1024 * 1024
    assert settings.llm.base_url == "http://127.0.0.1:8089/v1"


def test_secret_is_masked_in_errors_and_registered_for_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "my-secret-key-without-a-known-shape"
    monkeypatch.setenv("LLM_API_KEY", key)
    settings = load_settings().settings
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == key
    assert key not in repr(settings)
    assert key not in redact_text(f"calling with {key}")


def test_provider_key_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fallback-000000000000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-fallback-0000000000")
    loaded = load_settings()
    assert loaded.settings.llm.api_key is not None
    assert loaded.settings.llm.api_key.get_secret_value().startswith("sk-ant-")
    assert loaded.sources["LLM_API_KEY"] == "environment (ANTHROPIC_API_KEY)"
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    key = load_settings().settings.llm.api_key
    assert key is not None
    assert key.get_secret_value().startswith("sk-openai-")
    monkeypatch.setenv("LLM_API_KEY", "sk-explicit-000000000000000")
    key = load_settings().settings.llm.api_key
    assert key is not None
    assert key.get_secret_value() == "sk-explicit-000000000000000"


def test_unknown_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProfileError, match=r"Unknown profile 'prod'.*choose one of"):
        load_settings("prod")
    monkeypatch.setenv("ASSISTANT_ENV", "qa")
    with pytest.raises(ProfileError, match=r"'qa' \(ASSISTANT_ENV\)"):
        load_settings()


def test_explicit_profile_needs_its_file_but_default_profile_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ProfileError, match=r"needs .*\.env\.production, which does not exist"):
        load_settings("production")
    monkeypatch.delenv("ASSISTANT_ENV")
    loaded = load_settings()
    assert loaded.profile == "development"
    assert loaded.env_file is None


def test_env_file_none_means_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("ASSISTANT_ENV_FILE", "none")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "prod"))
    loaded = load_settings("production")
    assert loaded.env_file is None
    assert loaded.settings.logging.level == "INFO"


def test_named_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "custom.env"
    custom.write_text("LLM_MODEL=custom-model\n")
    monkeypatch.setenv("ASSISTANT_ENV_FILE", str(custom))
    assert load_settings().settings.llm.model == "custom-model"
    monkeypatch.setenv("ASSISTANT_ENV_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(ProfileError, match="does not exist"):
        load_settings()


def test_malformed_file_is_a_profile_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(tmp_path, "test", "LOG_LEVEL=INFO\nthis line is wrong\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ProfileError, match=r"\.env\.test:2: expected KEY=VALUE"):
        load_settings()


def test_unknown_settings_in_file_are_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(tmp_path, "test", "LLM_MODLE=typo\nUNRELATED=1\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    loaded = load_settings()
    assert loaded.warnings == [".env.test: unknown setting LLM_MODLE (ignored; a typo?)"]


def test_empty_value_keeps_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(tmp_path, "test", "LLM_MAX_TOKENS=\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_TEMPERATURE", "")
    settings = load_settings().settings
    assert settings.llm.max_tokens == 4096
    assert settings.llm.temperature == 0.7


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_templates_are_valid_and_secret_free(
    profile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    template = REPO_ROOT / f".env.{profile}"
    values = read_env_file(template)
    for name, value in values.items():
        assert name in env_names(), f"{template.name}: unknown setting {name}"
        if name.endswith(("API_KEY", "TOKEN")):
            assert value == "", f"{template.name} commits a secret in {name}"
    # The template mirrors the profile's built-in defaults.
    for name, value in PROFILE_DEFAULTS[profile].items():
        if values.get(name):
            assert values[name].lower() == value.lower(), (template.name, name)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / profile))
    loaded = load_settings(profile)
    assert loaded.env_file == template
    assert loaded.warnings == []


def test_profile_intent() -> None:
    development = load_settings("development").settings
    assert development.logging.level == "DEBUG"
    assert development.features.tracing is True
    production = load_settings("production")
    assert production.settings.logging.level == "INFO"
    assert production.settings.features.metrics is True
    assert production.sources["ASSISTANT_DATA_DIR"] == "environment"


def test_production_defaults_to_a_system_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSISTANT_DATA_DIR")
    assert load_settings("production").settings.data_dir == Path("/var/lib/assistant")


def test_hints_name_only_places_that_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "set LLM_API_KEY in .env.development" when no such file exists sent people
    # looking for a file that was never there.
    monkeypatch.setenv("ASSISTANT_ENV_FILE", "none")
    settings = load_settings().settings
    assert settings.hint("LLM_API_KEY") == "set LLM_API_KEY in the environment"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-the-fallback-000")
    settings = load_settings().settings
    assert (
        settings.hint("LLM_API_KEY", verb="check") == "check ANTHROPIC_API_KEY in the environment"
    )
    monkeypatch.delenv("ASSISTANT_ENV_FILE")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    path = write_env(tmp_path, "staging", "LLM_API_KEY=sk-in-the-file-0000\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path))
    settings = load_settings("staging").settings
    assert settings.hint("LLM_API_KEY", verb="check") == f"check LLM_API_KEY in {path}"
    assert settings.hint("LLM_MODEL") == f"set LLM_MODEL in {path} or the environment"
    monkeypatch.setenv("LLM_API_KEY", "sk-in-the-environment-00")
    settings = load_settings("staging").settings
    assert settings.hint("LLM_API_KEY") == "set LLM_API_KEY in the environment"


@pytest.mark.parametrize(
    "token", ["12345", "short-token-15c", "has a space in it ok", "tab\tinside-the-token"]
)
def test_monitor_token_must_be_long_and_printable(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_TOKEN", token)
    with pytest.raises(SettingsError, match="MONITOR_TOKEN: must") as caught:
        load_settings()
    assert token not in str(caught.value)
    monkeypatch.setenv("MONITOR_TOKEN", "0123456789abcdef")
    assert load_settings().settings.monitoring.token is not None


@pytest.mark.parametrize("window", ["٣m", "0m", "99999999999999d", "5 minutes"])
def test_alert_window_is_checked_by_the_parser_the_rules_use(
    window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accepted here once, these failed only later, when the alert rules ran.
    monkeypatch.setenv("ALERT_WINDOW", window)
    with pytest.raises(SettingsError, match="ALERT_WINDOW: "):
        load_settings()
