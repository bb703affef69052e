"""Run health checks concurrently, each under its own timeout, and aggregate them.

A check is an ``async`` callable returning a :class:`CheckOutcome`. The monitor
turns an exception or a timeout into an unhealthy result that says why and how long
it took; a non-critical check's failure only degrades the whole. The overall status
is the worst of all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from assistant_monitoring.health.model import (
    CheckOutcome,
    CheckResult,
    HealthReport,
    Status,
    worst,
)

CheckFunction = Callable[[], Awaitable[CheckOutcome]]


@dataclass(frozen=True)
class HealthCheck:
    """A named check and how to run it."""

    name: str
    run: CheckFunction
    timeout_seconds: float = 5.0
    critical: bool = True
    component: str = ""
    measurement: str = "status"
    component_type: str = "component"


class HealthMonitor:
    """A set of checks; :meth:`run` runs some or all of them at once."""

    def __init__(self, checks: Iterable[HealthCheck] = ()) -> None:
        self.checks: dict[str, HealthCheck] = {}
        for check in checks:
            self.add(check)

    def add(self, check: HealthCheck) -> None:
        """Register a check (a later one with the same name replaces it)."""
        self.checks[check.name] = check

    def names(self) -> list[str]:
        """Names of the registered checks."""
        return list(self.checks)

    async def run(
        self, names: Iterable[str] | None = None, *, total_timeout: float | None = None
    ) -> HealthReport:
        """Run the named checks (all by default) concurrently.

        ``total_timeout`` caps the whole run: a check still running then is reported
        unhealthy with "timed out".
        """
        selected = [self.checks[name] for name in (names or self.checks)]
        started = datetime.now(UTC)
        clock = time.perf_counter()
        results = await asyncio.gather(*(self._run_one(c, total_timeout) for c in selected))
        return HealthReport(
            status=worst([r.status for r in results]),
            checks=list(results),
            started=started,
            duration_seconds=time.perf_counter() - clock,
        )

    async def _run_one(self, check: HealthCheck, total_timeout: float | None) -> CheckResult:
        limit = check.timeout_seconds
        if total_timeout is not None:
            limit = min(limit, total_timeout)
        started = datetime.now(UTC)
        clock = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(check.run(), timeout=limit)
        except TimeoutError:
            outcome = CheckOutcome(Status.UNHEALTHY, f"timed out after {limit:g}s")
        except Exception as error:  # a check's bug must not hide the others' results
            outcome = CheckOutcome(
                Status.UNHEALTHY, f"check failed: {type(error).__name__}: {error}"
            )
        status = outcome.status
        # Messages reach the terminal, --json, /health, the log and the health history:
        # a check (or an exception it raised) quoting a URL or a key is masked here.
        from assistant_monitoring.redact import redact_text

        message = redact_text(outcome.message)
        if not check.critical and status is Status.UNHEALTHY:
            status = Status.DEGRADED
        return CheckResult(
            name=check.name,
            component=check.component or check.name,
            measurement=check.measurement,
            component_type=check.component_type,
            status=status,
            message=message,
            observed_value=outcome.observed_value,
            observed_unit=outcome.observed_unit,
            duration_seconds=time.perf_counter() - clock,
            time=started,
            critical=check.critical,
        )
