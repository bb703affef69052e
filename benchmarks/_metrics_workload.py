"""The metrics workload shared by ``bench_metrics_flush.py`` and ``bench_metrics_query.py``.

Not a benchmark itself. It defines the 100 series of a realistic assistant (the
families of ``assistant_monitoring.metrics.families`` with small, closed label sets)
and records activity on them through the real registry:

* :func:`record_snapshot`: every one of the 100 series once (56 counters, 7 gauges,
  37 histograms with ``observations`` values each), what one process flushes;
* :func:`record_activity`: ``minutes`` of traffic (pipeline runs with their stages,
  classifiers, LLM calls, database queries and the odd error), seeded.
"""

from __future__ import annotations

import random

from assistant_monitoring.metrics.families import AssistantMetrics

STAGES = ("context", "retrieve", "classify", "generate", "persist")
CLASSIFIERS = ("intent", "language", "safety", "topic")
DB_OPS = ("select", "insert", "update", "delete", "other")
MODELS = (
    ("anthropic", "claude-sonnet-4-5", 0.6),
    ("anthropic", "claude-haiku-4-5", 0.3),
    ("openai", "gpt-4.1-mini", 0.1),
)
PROVIDERS = ("anthropic", "openai")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")
HEALTH_CHECKS = ("database", "llm", "disk")
BREAKER_STATES = ("closed", "open", "half_open")
ERRORS = (
    ("TimeoutError", "llm:anthropic"),
    ("TimeoutError", "llm:openai"),
    ("RateLimitError", "llm:anthropic"),
    ("RateLimitError", "llm:openai"),
    ("APIConnectionError", "llm:anthropic"),
    ("APIConnectionError", "llm:openai"),
    ("OperationalError", "db:select"),
    ("OperationalError", "db:insert"),
    ("IntegrityError", "db:insert"),
    ("ValueError", "classifier:intent"),
    ("ValueError", "classifier:topic"),
    ("KeyError", "pipeline"),
    ("ValidationError", "pipeline"),
    ("JSONDecodeError", "llm:anthropic"),
    ("CancelledError", "pipeline"),
)
SERIES_COUNT = 100


def record_snapshot(m: AssistantMetrics, rng: random.Random, observations: int = 20) -> None:
    """Touch each of the 100 series once: counters, gauges, histograms of ``observations``."""
    # Counters: 2 + 10 + 5 + 6 + 12 + 3 + 2 + 15 + 1 = 56.
    for status in ("success", "failure"):
        m.pipeline_runs.labels(status).inc(rng.randint(1, 5))
    for stage in STAGES:
        for status in ("success", "failure"):
            m.stage_runs.labels(stage, status).inc(rng.randint(1, 5))
    for op in DB_OPS:
        m.db_queries.labels(op).inc(rng.randint(1, 20))
    for provider, model, _ in MODELS:
        for status in ("success", "error"):
            m.llm_requests.labels(provider, model, status).inc(rng.randint(1, 3))
        for kind in TOKEN_TYPES:
            m.llm_tokens.labels(provider, model, kind).inc(rng.randint(10, 5000))
        m.llm_cost.labels(provider, model).inc(rng.random() / 10)
    for provider in PROVIDERS:
        m.llm_retries.labels(provider).inc()
    for kind, context in ERRORS:
        m.errors.labels(kind, context).inc()
    m.process_cpu.labels().inc(0.25)
    # Gauges: 3 + 3 + 1 = 7.
    for check in HEALTH_CHECKS:
        m.health_status.labels(check).set(1.0)
    for state in BREAKER_STATES:
        m.breaker_state.labels("anthropic", state).set(1.0 if state == "closed" else 0.0)
    m.process_memory.labels().set(85_000_000)
    # Histograms: 1 + 5 + 4 + 4 + 5 + 3 + 3 + 12 = 37.
    histograms = [m.pipeline_duration.labels()]
    histograms += [m.stage_duration.labels(stage) for stage in STAGES]
    histograms += [m.classifier_duration.labels(name) for name in CLASSIFIERS]
    histograms += [m.classifier_confidence.labels(name) for name in CLASSIFIERS]
    histograms += [m.db_query_duration.labels(op) for op in DB_OPS]
    for provider, model, _ in MODELS:
        histograms.append(m.llm_duration.labels(provider, model))
        histograms.append(m.llm_ttft.labels(provider, model))
        histograms += [m.llm_request_tokens.labels(provider, model, k) for k in TOKEN_TYPES]
    for child in histograms:
        for _ in range(observations):
            child.observe(rng.lognormvariate(-1.0, 1.0))


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count (Knuth for small means, a rounded normal for large ones)."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, count, product = 2.718281828459045**-mean, 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def record_activity(
    m: AssistantMetrics, rng: random.Random, *, minutes: int = 1, runs_per_minute: float = 2.0
) -> int:
    """Record ``minutes`` of traffic; returns the number of pipeline runs recorded."""
    runs = _poisson(rng, runs_per_minute * minutes)
    weights = [w for _, _, w in MODELS]
    for _ in range(runs):
        failed = rng.random() < 0.03
        # A failed run fails in one stage, most often while generating.
        failing = rng.choices(STAGES, (1, 2, 1, 6, 1))[0] if failed else ""
        total = 0.0
        for stage in STAGES:
            seconds = rng.lognormvariate(-3.0, 0.8)
            if stage == "generate":
                seconds = rng.lognormvariate(0.3, 0.6)
            total += seconds
            m.stage_runs.labels(stage, "failure" if stage == failing else "success").inc()
            m.stage_duration.labels(stage).observe(seconds)
        m.pipeline_runs.labels("failure" if failed else "success").inc()
        m.pipeline_duration.labels().observe(total)
        for name in CLASSIFIERS:
            m.classifier_duration.labels(name).observe(rng.lognormvariate(-6.0, 0.7))
            m.classifier_confidence.labels(name).observe(rng.betavariate(8, 2))
        for _ in range(rng.randint(3, 8)):
            op = rng.choices(DB_OPS, (60, 20, 12, 5, 3))[0]
            m.db_queries.labels(op).inc()
            m.db_query_duration.labels(op).observe(rng.lognormvariate(-7.0, 0.9))
        provider, model, _ = rng.choices(MODELS, weights)[0]
        calls = 2 if rng.random() < 0.2 else 1
        for _ in range(calls):
            status = "error" if failed or rng.random() < 0.01 else "success"
            m.llm_requests.labels(provider, model, status).inc()
            m.llm_duration.labels(provider, model).observe(rng.lognormvariate(0.3, 0.6))
            m.llm_ttft.labels(provider, model).observe(rng.lognormvariate(-1.0, 0.5))
            tokens = {
                "input": int(rng.lognormvariate(7.0, 0.8)),
                "output": int(rng.lognormvariate(5.5, 0.7)),
                "cache_read": int(rng.lognormvariate(7.5, 1.0)) if rng.random() < 0.5 else 0,
                "cache_write": int(rng.lognormvariate(6.0, 1.0)) if rng.random() < 0.1 else 0,
            }
            for kind, count in tokens.items():
                if count:
                    m.llm_tokens.labels(provider, model, kind).inc(count)
                m.llm_request_tokens.labels(provider, model, kind).observe(count)
            m.llm_cost.labels(provider, model).inc(
                tokens["input"] * 3e-6 + tokens["output"] * 15e-6
            )
            if rng.random() < 0.02:
                m.llm_retries.labels(provider).inc()
        if failed or rng.random() < 0.01:
            kind, context = rng.choice(ERRORS)
            m.errors.labels(kind, context).inc()
    m.process_cpu.labels().inc(0.05 * minutes + 0.3 * runs)
    m.process_memory.labels().set(80_000_000 + rng.randint(0, 20_000_000))
    for check in HEALTH_CHECKS:
        m.health_status.labels(check).set(1.0 if rng.random() < 0.99 else 0.5)
    for state in BREAKER_STATES:
        m.breaker_state.labels("anthropic", state).set(1.0 if state == "closed" else 0.0)
    return runs
