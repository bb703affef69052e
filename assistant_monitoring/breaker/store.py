"""Breaker state in ``monitoring.db``, shared by every process.

The next CLI run must fail fast while a provider is down, so each breaker's state
is a row; a transition reads, changes and writes that row inside one
``BEGIN IMMEDIATE`` transaction, so concurrent processes never lose an update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from assistant_monitoring.breaker.state import BreakerState
from assistant_monitoring.metrics.store import MetricsStore

_COLUMNS = "service, state, failures, trips, successes, opened_at, retry_at, reason, updated_at"


class BreakerStateStore:
    """Load and update breaker rows (the table comes with the metrics store's migrations)."""

    def __init__(self, path: Path, *, read_only_ok: bool = False) -> None:
        self._store = MetricsStore(path, read_only_ok=read_only_ok)

    def load_all(self) -> list[BreakerState]:
        """Every breaker that has a row, by service name."""
        conn = self._store.connect()
        rows = conn.execute(f"SELECT {_COLUMNS} FROM breakers ORDER BY service").fetchall()
        return [BreakerState(*row) for row in rows]

    def load(self, service: str) -> BreakerState | None:
        """One breaker's row, if any."""
        conn = self._store.connect()
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM breakers WHERE service = ?", (service,)
        ).fetchone()
        return BreakerState(*row) if row else None

    def update(
        self, service: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]:
        """Apply ``change`` to the stored state atomically; returns (before, after)."""
        conn = self._store.connect()
        with self._store.transaction():
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM breakers WHERE service = ?", (service,)
            ).fetchone()
            before = BreakerState(*row) if row else BreakerState(service)
            after = change(before)
            if after != before:
                values = asdict(after)
                conn.execute(
                    f"INSERT INTO breakers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (service) DO UPDATE SET state = excluded.state, "
                    "failures = excluded.failures, trips = excluded.trips, "
                    "successes = excluded.successes, opened_at = excluded.opened_at, "
                    "retry_at = excluded.retry_at, reason = excluded.reason, "
                    "updated_at = excluded.updated_at",
                    tuple(values[name] for name in _COLUMNS.split(", ")),
                )
        return before, after

    def close(self) -> None:
        """Close the connection."""
        self._store.close()
