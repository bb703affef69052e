"""The circuit breaker's state machine, as pure functions of (state, event, time).

Keeping the transitions pure lets one implementation serve both an in-memory breaker
and one whose state lives in ``monitoring.db`` and is shared by every process: the
store reads the row, applies the transition and writes it back in one transaction.

    closed --(threshold consecutive failures, or failure rate over the window)--> open
    open --(reset timeout elapsed)--> half_open
    half_open --(the permitted trial calls succeed)--> closed
    half_open --(a trial fails)--> open, with a longer reset timeout
    any --(429 with Retry-After)--> open until then
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass(frozen=True)
class BreakerConfig:
    """How a breaker trips and recovers."""

    failure_threshold: int = 5
    reset_timeout: float = 60.0
    max_reset_timeout: float = 600.0
    backoff: float = 2.0
    half_open_max_calls: int = 1
    failure_rate_threshold: float | None = None  # e.g. 0.5: open at 50% failures...
    window_seconds: float = 60.0  # ...over this window...
    minimum_calls: int = 10  # ...once it holds at least this many calls

    def timeout_after(self, trips: int) -> float:
        """Reset timeout after the ``trips``-th consecutive trip (grows, capped)."""
        return min(self.reset_timeout * self.backoff ** max(trips - 1, 0), self.max_reset_timeout)


@dataclass(frozen=True)
class BreakerState:
    """A breaker's persisted state."""

    service: str
    state: str = CLOSED
    failures: int = 0  # consecutive failures (closed), or failed trials
    trips: int = 0  # consecutive trips without a full recovery
    successes: int = 0  # successful trials in half-open
    opened_at: float | None = None
    retry_at: float | None = None
    reason: str | None = None
    updated_at: float = 0.0


def due_for_trial(state: BreakerState, now: float) -> BreakerState:
    """An open breaker whose timeout has passed becomes half-open."""
    if state.state == OPEN and state.retry_at is not None and now >= state.retry_at:
        return replace(state, state=HALF_OPEN, successes=0, updated_at=now)
    return state


def on_success(state: BreakerState, config: BreakerConfig, now: float) -> BreakerState:
    """A call succeeded (or failed in a way that proves the service is up)."""
    if state.state == HALF_OPEN:
        successes = state.successes + 1
        if successes >= config.half_open_max_calls:
            return BreakerState(state.service, CLOSED, updated_at=now)
        return replace(state, successes=successes, updated_at=now)
    if state.state == CLOSED and state.failures:
        return replace(state, failures=0, updated_at=now)
    return state


def on_failure(
    state: BreakerState,
    config: BreakerConfig,
    now: float,
    *,
    reason: str,
    retry_after: float | None = None,
    rate_exceeded: bool = False,
) -> BreakerState:
    """A call failed in a way that counts against the service."""
    if retry_after is not None:
        return _open(state, now, f"rate limited (429): {reason}", now + retry_after, state.trips)
    if state.state == HALF_OPEN:
        trips = state.trips + 1
        why = f"trial call failed: {reason}"
        return _open(state, now, why, now + config.timeout_after(trips), trips)
    if state.state == OPEN:
        return state  # a call that was already in flight when it opened
    failures = state.failures + 1
    if failures >= config.failure_threshold or rate_exceeded:
        trips = state.trips + 1
        why = (
            f"failure rate over {config.failure_rate_threshold:.0%} in {config.window_seconds:g}s"
            if rate_exceeded and failures < config.failure_threshold
            else f"{failures} consecutive failures"
        )
        return _open(
            replace(state, failures=failures),
            now,
            f"{why}, last: {reason}",
            now + config.timeout_after(trips),
            trips,
        )
    return replace(state, failures=failures, reason=reason, updated_at=now)


def _open(
    state: BreakerState, now: float, reason: str, retry_at: float, trips: int
) -> BreakerState:
    return replace(
        state,
        state=OPEN,
        trips=trips,
        successes=0,
        opened_at=now,
        retry_at=retry_at,
        reason=reason,
        updated_at=now,
    )


def reset(state: BreakerState, now: float) -> BreakerState:
    """Close the breaker by hand."""
    return BreakerState(state.service, CLOSED, updated_at=now)
