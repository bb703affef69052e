"""Summarise a window of the store into the groups ``monitor metrics`` shows.

The JSON form (``monitor metrics --json``) is a stable interface for scripts: field
names here change only with a note in the README.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from assistant_monitoring.metrics.families import TOKEN_TYPES
from assistant_monitoring.metrics.query import SeriesAggregate, WindowData
from assistant_monitoring.pricing import PriceTable

GROUPS = ("pipeline", "stages", "classifiers", "llm", "database", "system", "errors")
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def distribution(aggregate: SeriesAggregate | None) -> dict[str, Any]:
    """count, mean, p50/p90/p95/p99, min, max of a histogram aggregate."""
    if aggregate is None or aggregate.count == 0:
        return {"count": 0, "mean": None, **dict.fromkeys(QUANTILES), "min": None, "max": None}
    return {
        "count": aggregate.count,
        "mean": aggregate.mean,
        **{name: aggregate.quantile(q) for name, q in QUANTILES.items()},
        "min": aggregate.min,
        "max": aggregate.max,
    }


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _values(window: WindowData, family: str, label: str) -> list[str]:
    return sorted({s.label(label) for s in window.family(family)})


def build_report(
    window: WindowData,
    *,
    period: str,
    prices: PriceTable | None = None,
    groups: tuple[str, ...] = GROUPS,
    name: str | None = None,
) -> dict[str, Any]:
    """The report document; ``name`` keeps only rows whose name contains it."""
    table = prices or PriceTable()

    def keep(*names: str) -> bool:
        return name is None or any(name.lower() in n.lower() for n in names)

    report: dict[str, Any] = {
        "period": period,
        "start": datetime.fromtimestamp(window.start, UTC).isoformat(),
        "end": datetime.fromtimestamp(window.end, UTC).isoformat(),
        "seconds": window.seconds,
        "has_data": bool(window.series),
    }
    if "pipeline" in groups:
        success = window.total("assistant_pipeline_runs_total", status="success")
        failure = window.total("assistant_pipeline_runs_total", status="failure")
        interrupted = window.total("assistant_pipeline_runs_total", status="interrupted")
        runs = success + failure + interrupted
        report["pipeline"] = {
            "runs": int(runs),
            "success": int(success),
            "failure": int(failure),
            "interrupted": int(interrupted),
            "error_ratio": _ratio(failure, runs),
            "runs_per_minute": runs / (window.seconds / 60),
            "duration_seconds": distribution(
                window.combined("assistant_pipeline_duration_seconds")
            ),
        }
    if "stages" in groups:
        stages = []
        for stage in _values(window, "assistant_stage_duration_seconds", "stage"):
            if not keep(stage):
                continue
            runs = window.total("assistant_stage_runs_total", stage=stage)
            failures = window.total("assistant_stage_runs_total", stage=stage, status="failure")
            stages.append(
                {
                    "stage": stage,
                    "runs": int(runs),
                    "failures": int(failures),
                    "error_ratio": _ratio(failures, runs),
                    "duration_seconds": distribution(
                        window.combined("assistant_stage_duration_seconds", stage=stage)
                    ),
                }
            )
        report["stages"] = stages
    if "classifiers" in groups:
        classifiers = []
        for classifier in _values(window, "assistant_classifier_duration_seconds", "classifier"):
            if not keep(classifier):
                continue
            confidence = window.combined("assistant_classifier_confidence", classifier=classifier)
            classifiers.append(
                {
                    "classifier": classifier,
                    "duration_seconds": distribution(
                        window.combined(
                            "assistant_classifier_duration_seconds", classifier=classifier
                        )
                    ),
                    "confidence": distribution(confidence),
                }
            )
        report["classifiers"] = classifiers
    if "llm" in groups:
        report["llm"] = _llm(window, table, keep)
        report["llm_retries"] = [
            {"provider": s.label("provider"), "retries": int(s.value)}
            for s in window.family("assistant_llm_retries_total")
            if keep(s.label("provider"))
        ]
    if "database" in groups:
        report["database"] = [
            {
                "operation": operation,
                "queries": int(window.total("assistant_db_queries_total", operation=operation)),
                "duration_seconds": distribution(
                    window.combined("assistant_db_query_duration_seconds", operation=operation)
                ),
            }
            for operation in _values(window, "assistant_db_query_duration_seconds", "operation")
            if keep(operation)
        ]
    if "system" in groups:
        memory = window.family("process_resident_memory_bytes")
        report["system"] = {
            "resident_memory_bytes": memory[0].value if memory else None,
            "cpu_seconds": window.total("process_cpu_seconds_total"),
            "metric_overflows": int(window.total("assistant_metric_overflow_total")),
            "metrics_errors": int(window.total("assistant_metrics_errors_total")),
        }
    if "errors" in groups:
        report["errors"] = sorted(
            (
                {"type": s.label("type"), "context": s.label("context"), "count": int(s.value)}
                for s in window.family("assistant_errors_total")
                if keep(s.label("type"), s.label("context"))
            ),
            key=lambda row: (-row["count"], row["type"]),
        )
    return report


def _llm(window: WindowData, prices: PriceTable, keep: Any) -> list[dict[str, Any]]:
    models = sorted(
        {
            (s.label("provider"), s.label("model"))
            for s in window.family("assistant_llm_requests_total")
        }
        | {
            (s.label("provider"), s.label("model"))
            for s in window.family("assistant_llm_tokens_total")
        }
    )
    rows = []
    for provider, model in models:
        if not keep(provider, model):
            continue
        requests = window.total("assistant_llm_requests_total", provider=provider, model=model)
        success = window.total(
            "assistant_llm_requests_total", provider=provider, model=model, status="success"
        )
        interrupted = window.total(
            "assistant_llm_requests_total", provider=provider, model=model, status="interrupted"
        )
        cost_series = [
            s
            for s in window.family("assistant_llm_cost_usd_total")
            if s.label("provider") == provider and s.label("model") == model
        ]
        tokens = {
            kind: int(
                window.total(
                    "assistant_llm_tokens_total", provider=provider, model=model, type=kind
                )
            )
            for kind in TOKEN_TYPES
        }
        priced = bool(cost_series) or prices.price(model) is not None
        rows.append(
            {
                "provider": provider,
                "model": model,
                "requests": int(requests),
                "errors": int(requests - success - interrupted),
                "error_ratio": _ratio(requests - success - interrupted, requests),
                "interrupted": int(interrupted),
                "duration_seconds": distribution(
                    window.combined(
                        "assistant_llm_request_duration_seconds", provider=provider, model=model
                    )
                ),
                "ttft_seconds": distribution(
                    window.combined(
                        "assistant_llm_time_to_first_token_seconds", provider=provider, model=model
                    )
                ),
                "tokens": tokens,
                "priced": priced,
                "cost_usd": sum(s.value for s in cost_series) if priced else None,
            }
        )
    return rows
