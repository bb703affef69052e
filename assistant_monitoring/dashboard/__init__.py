"""The terminal dashboard's data (`assistant monitor dashboard`); its view is
:mod:`assistant_monitoring.cli.dashboard_view`."""

from assistant_monitoring.dashboard.data import HealthProbe, Snapshot, take_snapshot

__all__ = ["HealthProbe", "Snapshot", "take_snapshot"]
