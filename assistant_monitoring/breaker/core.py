"""The circuit breaker: wraps calls to one service, sync or async.

Usage::

    breaker = CircuitBreaker("llm:anthropic")

    @breaker                      # on def or async def
    async def ask(...): ...

    with breaker:                 # or around a block (async with works too)
        client.messages.create(...)

    breaker.call(fn, *args)       # or explicitly

Rules: which errors count is decided by a classifier (client errors 400/401/404 do
not; a 429 opens the breaker until its Retry-After; 5xx, timeouts and connection
errors count). The lock guards the breaker's state, never the wrapped call, so one
slow call does not serialise the others. In half-open, exactly
``half_open_max_calls`` trial calls get through; the rest fail fast.

With a :class:`BreakerStateStore` the state lives in ``monitoring.db``: the next
process sees an open breaker and fails fast instead of retrying a dead provider.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from assistant_monitoring.breaker import state as machine
from assistant_monitoring.breaker.classify import Classification, Verdict, classify_error
from assistant_monitoring.breaker.state import BreakerConfig, BreakerState
from assistant_monitoring.breaker.store import BreakerStateStore
from assistant_monitoring.errors import MonitoringError
from assistant_monitoring.syncasync import AsyncFromSync

P = ParamSpec("P")
R = TypeVar("R")
Listener = Callable[["CircuitBreaker", str, str, BreakerState], None]

# How often a breaker re-reads shared state that another process may have changed.
_REFRESH_SECONDS = 1.0


class CircuitOpenError(MonitoringError):
    """A call was refused because the service's breaker is open (shown to users)."""

    exit_code = 1

    def __init__(
        self, service: str, reason: str | None, retry_at: float | None, now: float
    ) -> None:
        self.service = service
        self.reason = reason
        self.retry_at = retry_at
        if retry_at is not None:
            wait = max(0.0, retry_at - now)
            when = datetime.fromtimestamp(retry_at, UTC).strftime("%H:%M:%S UTC")
            retry = f"will retry after {when} (in {wait:.0f}s)"
        else:
            retry = "trial calls in progress"
        super().__init__(
            f"{service} is unavailable: circuit open ({reason or 'recent failures'}); {retry}. "
            f"`assistant monitor breakers --reset {service}` closes it by hand"
        )


class CircuitBreaker(AsyncFromSync):
    """A breaker for one service (``llm:anthropic``, ``database``, any name)."""

    def __init__(
        self,
        service: str,
        config: BreakerConfig | None = None,
        *,
        store: BreakerStateStore | None = None,
        classifier: Callable[[BaseException], Classification] = classify_error,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.config = config or BreakerConfig()
        self.store = store
        self.classifier = classifier
        self.clock = clock
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._state = BreakerState(service)
        self._in_flight_trials = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._refreshed = -1e18
        # Which `with breaker:` blocks are half-open trials, per thread and task.
        # Tuples, not lists: the default value is shared, so it must be immutable.
        self._tokens: contextvars.ContextVar[tuple[bool, ...]] = contextvars.ContextVar(
            f"breaker-{service}", default=()
        )

    # -- state ------------------------------------------------------------------

    def on_state_change(self, listener: Listener) -> Listener:
        """Call ``listener(breaker, old, new, state)`` on every transition."""
        self.listeners.append(listener)
        return listener

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its timeout reads as half-open)."""
        with self._lock:
            self._refresh(self.clock(), force=False)
            return machine.due_for_trial(self._state, self.clock())

    @property
    def refusing(self) -> bool:
        """Whether a call made now would be refused (open, its retry time not reached)."""
        return self.state.state == machine.OPEN

    def _refresh(self, now: float, *, force: bool) -> None:
        if self.store is None or (not force and now - self._refreshed < _REFRESH_SECONDS):
            return
        self._refreshed = now
        try:
            stored = self.store.load(self.service)
        except Exception as error:
            self._lose_store(error)
            return
        if stored is not None and stored.updated_at >= self._state.updated_at:
            self._state = stored

    def _lose_store(self, error: Exception) -> None:
        """Go on with this process's own state when the shared one cannot be read or written.

        A breaker protects the service it guards; a damaged or read-only
        monitoring.db must not make every call fail. Warned once per breaker.
        """
        self.store = None
        from loguru import logger

        logger.warning(
            f"circuit breaker {self.service}: its state is not shared with other processes "
            f"any more ({error})"
        )

    def _apply(self, change: Callable[[BreakerState], BreakerState]) -> None:
        """Apply a transition (to the shared row when there is a store); notify listeners."""
        before = after = None
        if self.store is not None:
            try:
                before, after = self.store.update(self.service, change)
                self._refreshed = self.clock()
            except Exception as error:
                self._lose_store(error)
        if before is None or after is None:
            before, after = self._state, change(self._state)
        self._state = after
        if before.state != after.state:
            if after.state != machine.HALF_OPEN:
                self._in_flight_trials = 0
            for listener in list(self.listeners):
                # A listener must never break the call path.
                with contextlib.suppress(Exception):
                    listener(self, before.state, after.state, after)

    # -- the call protocol -----------------------------------------------------------

    def before_call(self) -> bool:
        """Ask to make a call; returns whether it is a half-open trial.

        Raises :class:`CircuitOpenError` when the breaker refuses the call.
        """
        with self._lock:
            now = self.clock()
            self._refresh(now, force=False)
            if self._state.state == machine.OPEN:
                if self._state.retry_at is not None and now < self._state.retry_at:
                    raise CircuitOpenError(
                        self.service, self._state.reason, self._state.retry_at, now
                    )
                self._apply(lambda s: machine.due_for_trial(s, now))
            if self._state.state == machine.HALF_OPEN:
                if self._in_flight_trials >= self.config.half_open_max_calls:
                    raise CircuitOpenError(self.service, self._state.reason, None, now)
                self._in_flight_trials += 1
                return True
            if self._state.state == machine.OPEN:  # another process re-opened it
                raise CircuitOpenError(self.service, self._state.reason, self._state.retry_at, now)
            return False

    def record_success(self, trial: bool = False) -> None:
        """Report that a permitted call succeeded."""
        with self._lock:
            now = self.clock()
            if trial:
                self._in_flight_trials = max(0, self._in_flight_trials - 1)
            self._note(now, ok=True)
            if trial or self._state.failures:
                self._apply(lambda s: machine.on_success(s, self.config, now))

    def record_failure(self, error: BaseException, trial: bool = False) -> None:
        """Report that a permitted call failed with ``error`` (classified here)."""
        verdict = self.classifier(error)
        if verdict.verdict is Verdict.IGNORE:
            self.record_success(trial)  # the service answered: it is up
            return
        with self._lock:
            now = self.clock()
            if trial:
                self._in_flight_trials = max(0, self._in_flight_trials - 1)
            self._note(now, ok=False)
            reason = f"{type(error).__name__}" + (f" {verdict.status}" if verdict.status else "")
            rate = self._rate_exceeded(now)
            self._apply(
                lambda s: machine.on_failure(
                    s,
                    self.config,
                    now,
                    reason=reason,
                    retry_after=verdict.retry_after,
                    rate_exceeded=rate,
                )
            )

    def _note(self, now: float, *, ok: bool) -> None:
        if self.config.failure_rate_threshold is None:
            return
        self._window.append((now, ok))
        horizon = now - self.config.window_seconds
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def _rate_exceeded(self, now: float) -> bool:
        threshold = self.config.failure_rate_threshold
        if threshold is None or len(self._window) < self.config.minimum_calls:
            return False
        failures = sum(1 for _, ok in self._window if not ok)
        return failures / len(self._window) >= threshold

    def reset(self) -> None:
        """Close the breaker by hand (``assistant monitor breakers --reset``)."""
        with self._lock:
            now = self.clock()
            self._window.clear()
            self._apply(lambda s: machine.reset(s, now))

    # -- ways to use it ---------------------------------------------------------------

    def call(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``function`` through the breaker."""
        trial = self.before_call()
        try:
            result = function(*args, **kwargs)
        except BaseException as error:
            self._settle(trial, error)
            raise
        self._settle(trial, None)
        return result

    async def acall(self, function: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
        """Await ``function(*args, **kwargs)`` through the breaker."""
        trial = self.before_call()
        try:
            result = await function(*args, **kwargs)
        except BaseException as error:
            self._settle(trial, error)
            raise
        self._settle(trial, None)
        return result

    def _settle(self, trial: bool, error: BaseException | None) -> None:
        """Report how a permitted call ended, whichever way it was made."""
        if error is None:
            self.record_success(trial)
        elif isinstance(error, Exception) and not isinstance(error, CircuitOpenError):
            self.record_failure(error, trial)
        elif trial:
            # Cancelled (Ctrl-C, task cancel): neither a success nor a failure.
            with self._lock:
                self._in_flight_trials = max(0, self._in_flight_trials - 1)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(function, *args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(function, *args, **kwargs)

        return guarded

    def __enter__(self) -> CircuitBreaker:
        trial = self.before_call()
        self._tokens.set((*self._tokens.get(), trial))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._tokens.get()
        trial = stack[-1] if stack else False
        self._tokens.set(stack[:-1])
        self._settle(trial, exc)
