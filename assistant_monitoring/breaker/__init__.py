"""Per-service circuit breakers whose state survives the process."""

from assistant_monitoring.breaker.classify import Classification, Verdict, classify_error
from assistant_monitoring.breaker.core import CircuitBreaker, CircuitOpenError
from assistant_monitoring.breaker.registry import BreakerRegistry, breaker_listeners
from assistant_monitoring.breaker.state import BreakerConfig, BreakerState
from assistant_monitoring.breaker.store import BreakerStateStore

__all__ = [
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStateStore",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "Verdict",
    "breaker_listeners",
    "classify_error",
]
