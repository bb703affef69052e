"""Each package's ``__all__`` is its public API: every name resolves, nothing is missing."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "package", ["assistant", "assistant_monitoring", "assistant_monitoring.metrics"]
)
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    assert exported, f"{package} declares no __all__"
    for name in exported:
        assert getattr(module, name) is not None, name


def test_monitoring_exports_match_public_modules() -> None:
    import assistant_monitoring
    from assistant_monitoring import errors, logs, settings

    expected = {"__version__", *errors.__all__, *logs.__all__, *settings.__all__}
    expected |= {"read_logs", "redact_text"}
    expected |= {
        "Instrumentation",
        "MetricsRegistry",
        "MetricsStore",
        "PriceTable",
        "StoreError",
        "start_metrics",
        "current_runtime",
    }
    # Constants and model groups stay in their modules; the rest is re-exported.
    expected -= {
        "PROFILES",
        "PROFILE_DEFAULTS",
        "DatabaseSettings",
        "FeatureSettings",
        "LlmSettings",
        "LoggingSettings",
        "MonitoringSettings",
        "ERROR_FILE_NAME",
        "LOG_FILE_NAME",
    }
    assert set(assistant_monitoring.__all__) == expected
    assert set(assistant_monitoring._EXPORTS) | {"__version__"} == expected


def test_unknown_attribute_is_an_attribute_error() -> None:
    import assistant_monitoring

    with pytest.raises(AttributeError):
        _ = assistant_monitoring.no_such_name  # type: ignore[attr-defined]
