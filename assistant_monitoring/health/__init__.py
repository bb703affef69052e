"""Health checks: concurrent, time-boxed, aggregated; the gate deployments rely on."""

from assistant_monitoring.health.checks import builtin_checks
from assistant_monitoring.health.model import CheckOutcome, CheckResult, HealthReport, Status, worst
from assistant_monitoring.health.monitor import HealthCheck, HealthMonitor
from assistant_monitoring.health.service import exit_code_for, run_health

__all__ = [
    "CheckOutcome",
    "CheckResult",
    "HealthCheck",
    "HealthMonitor",
    "HealthReport",
    "Status",
    "builtin_checks",
    "exit_code_for",
    "run_health",
    "worst",
]
