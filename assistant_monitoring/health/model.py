"""Health results and their JSON form (the "health+json" draft's shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A check's (or the whole report's) status, worst last."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def rank(self) -> int:
        """0 healthy, 1 degraded, 2 unhealthy (also the CLI's exit code)."""
        return _RANK[self]

    @property
    def json_status(self) -> str:
        """health+json's vocabulary: pass, warn, fail."""
        return _JSON[self]


_RANK = {Status.HEALTHY: 0, Status.DEGRADED: 1, Status.UNHEALTHY: 2}
_JSON = {Status.HEALTHY: "pass", Status.DEGRADED: "warn", Status.UNHEALTHY: "fail"}


def worst(statuses: list[Status]) -> Status:
    """Any unhealthy -> unhealthy, else any degraded -> degraded, else healthy."""
    return max(statuses, key=lambda s: s.rank, default=Status.HEALTHY)


@dataclass(frozen=True)
class CheckOutcome:
    """What a check function returns: status, message, and what it measured."""

    status: Status
    message: str
    observed_value: float | None = None
    observed_unit: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """A finished check: its outcome plus name, timing and how it is keyed in JSON."""

    name: str
    component: str
    measurement: str
    component_type: str
    status: Status
    message: str
    observed_value: float | None
    observed_unit: str | None
    duration_seconds: float
    time: datetime
    critical: bool = True

    def as_json(self) -> dict[str, Any]:
        """One entry of the health+json ``checks`` object."""
        entry: dict[str, Any] = {
            "componentType": self.component_type,
            "status": self.status.json_status,
            "time": self.time.isoformat(),
            "output": self.message,
            "durationMs": round(self.duration_seconds * 1000, 3),
        }
        if self.observed_value is not None:
            entry["observedValue"] = self.observed_value
        if self.observed_unit is not None:
            entry["observedUnit"] = self.observed_unit
        if not self.critical:
            entry["critical"] = False
        return entry


@dataclass
class HealthReport:
    """The result of one health run."""

    status: Status
    checks: list[CheckResult]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_seconds: float = 0.0

    def as_json(self, *, version: str, service: str = "assistant") -> dict[str, Any]:
        """The health+json document: status pass|warn|fail, checks keyed component:measurement."""
        checks: dict[str, list[dict[str, Any]]] = {}
        for check in self.checks:
            checks.setdefault(f"{check.component}:{check.measurement}", []).append(check.as_json())
        return {
            "status": self.status.json_status,
            "version": version,
            "serviceId": service,
            "description": f"health of {service}",
            "time": self.started.isoformat(),
            "durationMs": round(self.duration_seconds * 1000, 3),
            "checks": checks,
        }
