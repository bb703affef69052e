"""The one OpenTelemetry Resource that traces, metrics and logs all carry.

``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` win over our defaults
(``service.name=assistant``, ``deployment.environment.name`` from the profile); the
same resource goes to all three signals, so a team's backend can join them (a gap
in Claude Code's exporter, where the variables reached one signal only).
"""

from __future__ import annotations

import uuid
from typing import Any

from assistant_monitoring import __version__

DEFAULT_SERVICE_NAME = "assistant"


def build_resource(environment: str) -> Any:
    """Our defaults, then the standard variables over them."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.version import __version__ as sdk_version

    ours = Resource(
        {
            "service.name": DEFAULT_SERVICE_NAME,
            "service.version": __version__,
            # One per process: many assistants (and many short `ask`s) report at once,
            # and a backend keeps their cumulative series apart by it.
            "service.instance.id": str(uuid.uuid4()),
            "deployment.environment.name": environment,
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": sdk_version,
        }
    )
    from_environment = OTELResourceDetector().detect()  # OTEL_RESOURCE_ATTRIBUTES, SERVICE_NAME
    return ours.merge(from_environment)
