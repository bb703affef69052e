"""The terminal dashboard (`assistant monitor dashboard`)."""

from assistant_monitoring.dashboard.data import HealthProbe, Snapshot, take_snapshot
from assistant_monitoring.dashboard.render import render_frame, sparkline

__all__ = ["HealthProbe", "Snapshot", "render_frame", "sparkline", "take_snapshot"]
