"""The HTTP server of ``assistant monitor serve``."""

from assistant_monitoring.server.app import HealthCache, MonitorServer, ServerConfig

__all__ = ["HealthCache", "MonitorServer", "ServerConfig"]
