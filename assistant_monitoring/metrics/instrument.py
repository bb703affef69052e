"""The instrumentation API the assistant calls: timers, LLM calls, errors, process stats.

Every timer works as a context manager (``with``/``async with``) and as a decorator on
plain and ``async def`` functions. On a coroutine function the decorator times the
awaited work (prometheus_client's ``.time()`` times only the creation of the
coroutine, ~0 s).

Instrumentation never raises into the caller: a failure inside it is logged once and
counted in ``assistant_metrics_errors_total``; the assistant keeps working.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from assistant_monitoring.errors import is_interruption
from assistant_monitoring.metrics.families import (
    DB_OPERATIONS,
    RUN_STATUSES,
    TOKEN_TYPES,
    AssistantMetrics,
    declare_families,
)
from assistant_monitoring.metrics.registry import MetricsRegistry
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.servicenames import llm_service
from assistant_monitoring.statuses import LlmStatus, RunStatus
from assistant_monitoring.syncasync import AsyncFromSync
from assistant_monitoring.tracing import Tracer

P = ParamSpec("P")
R = TypeVar("R")
Clock = Callable[[], float]

_reported: set[str] = set()


def _swallow(metrics: AssistantMetrics, operation: str, error: BaseException) -> None:
    """Count and log (once per operation) a failure of the instrumentation itself."""
    try:
        metrics.metrics_errors.labels(operation).inc()
        if operation not in _reported:
            _reported.add(operation)
            from loguru import logger

            logger.opt(exception=error).warning(f"metrics: {operation} failed: {error}")
    except Exception:  # pragma: no cover - the last resort must not raise either
        pass


class Timer(AsyncFromSync):
    """Times a block or a function call and hands ``(seconds, error)`` to ``on_done``.

    ``error`` is the exception that left the block, or None. A new Timer is made for
    every decorated call, so one decorator serves concurrent calls.
    """

    __slots__ = ("_clock", "_on_done", "_start", "elapsed")

    def __init__(
        self,
        on_done: Callable[[float, BaseException | None], None],
        *,
        clock: Clock = time.perf_counter,
    ) -> None:
        self._on_done = on_done
        self._clock = clock
        self._start = 0.0
        self.elapsed = 0.0

    def __enter__(self) -> Timer:
        self._start = self._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed = self._clock() - self._start
        self._on_done(self.elapsed, exc)

    def _fresh(self) -> Timer:
        return Timer(self._on_done, clock=self._clock)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self._fresh():
                    return await function(*args, **kwargs)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._fresh():
                return function(*args, **kwargs)

        return timed


def _status(error: BaseException | None) -> RunStatus:
    if error is None:
        return RunStatus.SUCCESS
    return RunStatus.INTERRUPTED if is_interruption(error) else RunStatus.FAILURE


def _is_error(error: BaseException | None) -> bool:
    """An exception that counts in ``assistant_errors_total`` (an interruption does not)."""
    return error is not None and not is_interruption(error)


@dataclass
class LlmAttempt:
    """One attempt of an LLM call (a call with two retries has three)."""

    provider: str
    request_model: str
    server_address: str
    server_port: int
    duration: float = 0.0
    response_model: str | None = None
    time_to_first_chunk: float | None = None  # streamed answers only
    tokens: dict[str, int] = field(default_factory=dict)  # TOKEN_TYPES, as recorded
    reasoning_tokens: int = 0
    error_type: str | None = None  # None: it answered

    # The GenAI conventions' counts: cached tokens are input (Anthropic reports them
    # apart from input_tokens, OpenAI inside prompt_tokens; ours are kept apart).
    @property
    def cache_write_tokens(self) -> int:
        """Tokens written to the cache, both tiers."""
        return self.tokens.get("cache_write", 0) + self.tokens.get("cache_write_1h", 0)

    @property
    def input_tokens(self) -> int:
        """All input tokens: plain, read from the cache and written to it."""
        return (
            self.tokens.get("input", 0) + self.tokens.get("cache_read", 0) + self.cache_write_tokens
        )


class LlmCall(AsyncFromSync):
    """What one LLM call reports while it runs: first token, usage, retries, outcome."""

    def __init__(self, owner: Instrumentation, provider: str, model: str) -> None:
        self._owner = owner
        self.provider = provider
        self.model = model
        self._start = 0.0
        self.duration = 0.0
        self.ttft: float | None = None
        self.tokens = dict.fromkeys(TOKEN_TYPES, 0)
        self.reasoning_tokens = 0  # of the output tokens (not a type of its own)
        self.retries = 0
        self.cost: float | None = None
        self.price_version: str | None = None
        self.status: str = LlmStatus.SUCCESS

    def first_token(self) -> None:
        """Mark the arrival of the first streamed token (only the first call counts)."""
        if self.ttft is None:
            self.ttft = self._owner.clock() - self._start

    def usage(
        self,
        *,
        input: int = 0,
        output: int = 0,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
        reasoning: int = 0,
    ) -> None:
        """Record the response's token usage (adds, for multi-part responses)."""
        self.tokens["input"] += input
        self.tokens["output"] += output
        self.tokens["cache_read"] += cache_read
        self.tokens["cache_write"] += cache_write
        self.tokens["cache_write_1h"] += cache_write_1h
        self.reasoning_tokens += reasoning

    def retry(self) -> None:
        """Count one retry of this call."""
        self.retries += 1

    def fail(self, status: str = "error") -> None:
        """Mark the call failed without raising (e.g. an error the caller handled)."""
        self.status = status

    def __enter__(self) -> LlmCall:
        self._start = self._owner.clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.duration = self._owner.clock() - self._start
        if exc is not None and self.status == LlmStatus.SUCCESS:
            self.status = LlmStatus.INTERRUPTED if is_interruption(exc) else LlmStatus.ERROR
        self._owner._record_llm(self, exc)


class Instrumentation:
    """Record the assistant's telemetry into a registry's families.

    ``registry``, ``clock`` and ``prices`` are injectable: tests pass a fresh registry
    and a fake clock and never sleep.
    """

    def __init__(
        self,
        registry: MetricsRegistry | None = None,
        *,
        clock: Clock = time.perf_counter,
        prices: PriceTable | None = None,
    ) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()
        self.metrics = declare_families(self.registry)
        self.clock = clock
        self.prices = prices if prices is not None else PriceTable()
        self._cpu_seen = 0.0
        self._stage_done: dict[str, Callable[[float, BaseException | None], None]] = {}
        # Called with every finished LLM call (retries included), and with every
        # attempt of one: the OTLP export records the GenAI metrics per attempt, as
        # they time one operation, not the retries and backoff sleeps around it.
        self.llm_listeners: list[Callable[[LlmCall, BaseException | None], None]] = []
        self.attempt_listeners: list[Callable[[LlmAttempt], None]] = []
        # Makes the spans of runs, stages and LLM attempts; the base only makes ids
        # (assistant_monitoring.otel replaces it with one that exports).
        self.tracer: Tracer = Tracer()

    # -- timers ---------------------------------------------------------------

    def pipeline_run(self) -> Timer:
        """Time a whole pipeline run; an exception leaving it marks it failed."""
        m = self.metrics

        def done(seconds: float, error: BaseException | None) -> None:
            try:
                m.pipeline_runs.labels(_status(error)).inc()
                m.pipeline_duration.labels().observe(seconds)
            except Exception as failure:
                _swallow(m, "pipeline_run", failure)

        return Timer(done, clock=self.clock)

    def stage(self, name: str) -> Timer:
        """Time one pipeline stage (``context``, ``classify``, ``generate``, ``persist``)."""
        done = self._stage_done.get(name)
        if done is None:
            done = self._stage_done[name] = self._make_stage_done(name)
        return Timer(done, clock=self.clock)

    def _make_stage_done(self, name: str) -> Callable[[float, BaseException | None], None]:
        # One callback per stage name, kept: a pipeline times four stages per message.
        m = self.metrics
        runs = {status: m.stage_runs.labels(name, status) for status in RUN_STATUSES}
        duration = m.stage_duration.labels(name)

        def done(seconds: float, error: BaseException | None) -> None:
            try:
                runs[_status(error)].inc()
                duration.observe(seconds)
            except Exception as failure:
                _swallow(m, "stage", failure)

        return done

    def classifier(self, name: str) -> Timer:
        """Time one classifier; report its confidence with :meth:`classification`."""
        m = self.metrics

        def done(seconds: float, error: BaseException | None) -> None:
            try:
                m.classifier_duration.labels(name).observe(seconds)
                if _is_error(error):
                    m.errors.labels(type(error).__name__, f"classifier:{name}").inc()
            except Exception as failure:
                _swallow(m, "classifier", failure)

        return Timer(done, clock=self.clock)

    def classification(self, name: str, confidence: float) -> None:
        """Record a classifier result's confidence (0-1)."""
        try:
            self.metrics.classifier_confidence.labels(name).observe(min(max(confidence, 0.0), 1.0))
        except Exception as failure:
            _swallow(self.metrics, "classification", failure)

    def db_query(self, operation: str) -> Timer:
        """Time a database query; ``operation`` is select/insert/update/delete/other."""
        m = self.metrics
        op = operation.lower() if operation.lower() in DB_OPERATIONS else "other"

        def done(seconds: float, error: BaseException | None) -> None:
            try:
                m.db_queries.labels(op).inc()
                m.db_query_duration.labels(op).observe(seconds)
                if _is_error(error):
                    m.errors.labels(type(error).__name__, f"db:{op}").inc()
            except Exception as failure:
                _swallow(m, "db_query", failure)

        return Timer(done, clock=self.clock)

    def llm_call(self, provider: str, model: str) -> LlmCall:
        """Context manager for one LLM call (retries included); see :class:`LlmCall`."""
        return LlmCall(self, provider, model)

    def _record_llm(self, call: LlmCall, error: BaseException | None) -> None:
        m = self.metrics
        try:
            provider, model = call.provider, call.model
            m.llm_requests.labels(provider, model, call.status).inc()
            m.llm_duration.labels(provider, model).observe(call.duration)
            if call.ttft is not None:
                m.llm_ttft.labels(provider, model).observe(call.ttft)
            if call.retries:
                m.llm_retries.labels(provider).inc(call.retries)
            if any(call.tokens.values()):
                for kind, count in call.tokens.items():
                    if count:
                        m.llm_tokens.labels(provider, model, kind).inc(count)
                    m.llm_request_tokens.labels(provider, model, kind).observe(count)
                price = self.prices.price(model)
                if price is not None:
                    call.cost = price.cost(**call.tokens)
                    call.price_version = self.prices.version
                    m.llm_cost.labels(provider, model).inc(call.cost)
            if _is_error(error):
                m.errors.labels(type(error).__name__, llm_service(provider)).inc()
            for listener in self.llm_listeners:
                listener(call, error)
        except Exception as failure:
            _swallow(m, "llm_call", failure)

    def llm_attempt(self, attempt: LlmAttempt) -> None:
        """Report one finished attempt of an LLM call to the attempt listeners."""
        for listener in self.attempt_listeners:
            try:
                listener(attempt)
            except Exception as failure:
                _swallow(self.metrics, "llm_attempt", failure)

    # -- events ---------------------------------------------------------------

    def error(self, error: BaseException | str, *, context: str) -> None:
        """Count an error by type (class name) and where it happened."""
        kind = error if isinstance(error, str) else type(error).__name__
        try:
            self.metrics.errors.labels(kind, context).inc()
        except Exception as failure:
            _swallow(self.metrics, "error", failure)

    def health(self, check: str, status: str) -> None:
        """Record a health check's status (healthy 1, degraded 0.5, unhealthy 0)."""
        value = {"healthy": 1.0, "degraded": 0.5}.get(status, 0.0)
        try:
            self.metrics.health_status.labels(check).set(value)
        except Exception as failure:
            _swallow(self.metrics, "health", failure)

    def sample_process(self) -> None:
        """Record this process's resident memory and the CPU time used since last time."""
        try:
            times = os.times()
            cpu = times.user + times.system
            self.metrics.process_cpu.labels().inc(max(cpu - self._cpu_seen, 0.0))
            self._cpu_seen = cpu
            rss = _resident_bytes()
            if rss is not None:
                self.metrics.process_memory.labels().set(rss)
        except Exception as failure:
            _swallow(self.metrics, "process", failure)


def _resident_bytes() -> int | None:
    """Current RSS from /proc (Linux), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except Exception:
            return None
