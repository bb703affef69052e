"""Run the configured health checks once and record the results as metrics."""

from __future__ import annotations

from collections.abc import Iterable

from assistant_monitoring import aio
from assistant_monitoring.errors import UsageError
from assistant_monitoring.health.checks import builtin_checks
from assistant_monitoring.health.model import HealthReport, Status
from assistant_monitoring.health.monitor import HealthMonitor
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.labels import CODE_NAME, one_of
from assistant_monitoring.settings import Settings


def run_health(
    settings: Settings,
    *,
    names: Iterable[str] | None = None,
    total_timeout: float | None = None,
    instrumentation: Instrumentation | None = None,
) -> HealthReport:
    """Run the built-in checks (or ``names``) and record each status as a gauge."""
    monitor = HealthMonitor(builtin_checks(settings, timeout_cap=total_timeout))
    selected = list(names or [])
    unknown = [name for name in selected if name not in monitor.checks]
    if unknown:
        raise UsageError(
            f"--check: unknown check '{unknown[0]}' (known: {', '.join(monitor.names())})"
        )
    report = aio.run(monitor.run(selected or None, total_timeout=total_timeout))
    if instrumentation is not None:
        runs = instrumentation.registry.counter(
            "assistant_health_checks_total",
            "Health check runs by result.",
            ["check", "status"],
            rules={"check": CODE_NAME, "status": one_of(*(s.value for s in Status))},
        )
        for result in report.checks:
            instrumentation.health(result.name, result.status.value)
            runs.labels(result.name, result.status.value).inc()
    return report


def exit_code_for(status: Status, fail_on: str) -> int:
    """0 healthy, 1 degraded, 2 unhealthy; ``fail_on='unhealthy'`` lets degraded pass."""
    if fail_on == "unhealthy":
        return 2 if status is Status.UNHEALTHY else 0
    return status.rank
