"""One breaker per service, sharing a store, with metrics and log listeners attached."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from assistant_monitoring.breaker.core import CircuitBreaker, Listener
from assistant_monitoring.breaker.state import STATES, BreakerConfig, BreakerState
from assistant_monitoring.breaker.store import BreakerStateStore
from assistant_monitoring.metrics.instrument import Instrumentation


def breaker_listeners(instrumentation: Instrumentation | None) -> list[Listener]:
    """Listeners that put transitions in the metrics (state gauge, transitions) and logs."""

    def log_transition(breaker: CircuitBreaker, old: str, new: str, state: BreakerState) -> None:
        from loguru import logger

        level = "WARNING" if new != "closed" else "INFO"
        logger.bind(event="breaker", service=breaker.service, old_state=old, new_state=new).log(
            level,
            f"circuit breaker {breaker.service}: {old} -> {new} ({state.reason or 'recovered'})",
        )

    listeners: list[Listener] = [log_transition]
    if instrumentation is not None:
        metrics = instrumentation.metrics
        transitions = instrumentation.registry.counter(
            "assistant_circuit_breaker_transitions_total",
            "Circuit breaker state changes.",
            ["service", "from_state", "to_state"],
        )

        def record_metrics(
            breaker: CircuitBreaker, old: str, new: str, state: BreakerState
        ) -> None:
            for name in STATES:
                metrics.breaker_state.labels(breaker.service, name).set(1.0 if name == new else 0.0)
            transitions.labels(breaker.service, old, new).inc()

        listeners.append(record_metrics)
    return listeners


class BreakerRegistry:
    """Breakers by service name; ``get`` creates one on first use."""

    def __init__(
        self,
        store_path: Path | None = None,
        *,
        config: BreakerConfig | None = None,
        instrumentation: Instrumentation | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store_path = store_path
        self.config = config or BreakerConfig()
        self.instrumentation = instrumentation
        self.clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, service: str, config: BreakerConfig | None = None) -> CircuitBreaker:
        """The breaker of ``service`` (``llm:anthropic``, ``llm:openai``, ``database``...)."""
        with self._lock:
            breaker = self._breakers.get(service)
            if breaker is None:
                store = BreakerStateStore(self.store_path) if self.store_path else None
                breaker = CircuitBreaker(
                    service, config or self.config, store=store, clock=self.clock or time.time
                )
                for listener in breaker_listeners(self.instrumentation):
                    breaker.on_state_change(listener)
                self._breakers[service] = breaker
            return breaker
