"""What the root command's global options decide, shared by every sub-command.

The root callback (``--profile``, ``--debug``, ``--no-color``) fills one
:class:`CliState`; commands ask it for validated settings. Settings are loaded
lazily, on first use, so ``config check --profile staging`` can validate another
profile than the global one and ``--help`` never pays for pydantic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from assistant_monitoring.logs import LoggingHandle
    from assistant_monitoring.settings import LoadedSettings, Settings


@dataclass
class CliState:
    """Global options of one CLI invocation, and what was built from them."""

    profile: str | None = None
    debug: bool = False
    no_color: bool = False
    _loaded: dict[str | None, LoadedSettings] = field(default_factory=dict)
    _logging: LoggingHandle | None = None

    @property
    def color(self) -> bool | None:
        """False when color is off (--no-color or NO_COLOR), None to auto-detect."""
        if self.no_color or os.environ.get("NO_COLOR"):
            return False
        return None

    def load(self, profile: str | None = None) -> LoadedSettings:
        """Validated settings for ``profile`` (default: the global one).

        Raises ProfileError or SettingsError; the CLI's error handler prints them.
        """
        from assistant_monitoring.settings import load_settings

        chosen = profile or self.profile
        if chosen not in self._loaded:
            self._loaded[chosen] = load_settings(chosen)
            if profile is None or profile == self.profile:
                from assistant_monitoring.sqlitefile import use_busy_timeout

                # Every database this process opens waits DATABASE_BUSY_TIMEOUT.
                use_busy_timeout(self._loaded[chosen].settings.database.busy_timeout_ms)
                self._finish_interrupted_restore(self._loaded[chosen].settings)
        return self._loaded[chosen]

    @staticmethod
    def _finish_interrupted_restore(settings: Settings) -> None:
        """Before any command opens a database: finish or undo a restore that was killed.

        A killed restore may have moved one database aside and not yet put the
        backup's in place; opening it then would create an empty one. One ``lstat``
        when there is nothing to do.
        """
        import sys

        from assistant_monitoring.restorejournal import finish_interrupted

        done = finish_interrupted(
            settings.data_dir, targets=[settings.database_path, settings.monitoring_db_path]
        )
        if done is not None:
            sys.stderr.write(f"note: {done}\n")

    def start(self, *, log_files: bool = True, metrics: bool = True) -> Settings:
        """Load settings, configure logging and start metrics: what working commands do first.

        Metrics recorded by this process are flushed to monitoring.db at exit (when
        ENABLE_METRICS is on).
        """
        from assistant_monitoring.logs import configure_from_settings

        settings = self.load().settings
        if self._logging is None:
            self._logging = configure_from_settings(
                settings, debug=self.debug, color=self.color, files=log_files
            )
        if metrics:
            from assistant_monitoring.metrics.retention import Retention
            from assistant_monitoring.metrics.runtime import start_metrics

            start_metrics(
                settings.monitoring_db_path if settings.features.metrics else None,
                retention=Retention.from_settings(settings),
                prices_file=settings.monitoring.prices_file,
            )
        return settings

    def console(self, *, stderr: bool = False) -> Console:
        """A rich console honouring --no-color and NO_COLOR."""
        from rich.console import Console

        return Console(
            stderr=stderr, no_color=self.color is False, highlight=False, soft_wrap=False
        )

    def close(self) -> None:
        """Flush and close what :meth:`start` opened."""
        if self._logging is not None:
            self._logging.close()
            self._logging = None


_STATE = CliState()


def current_state() -> CliState:
    """The state of this invocation (one per process)."""
    return _STATE


def reset_state(**options: Any) -> CliState:
    """Start a fresh invocation's state (the root callback; tests running in-process)."""
    global _STATE
    _STATE.close()
    _STATE = CliState(**options)
    return _STATE
