"""Structured log events with fixed field names, so logs stay queryable with jq.

The pipeline calls these instead of formatting its own messages: the message reads
well in a terminal and the fields (flat, stable names) serve ``jq``, lnav and
``assistant monitor logs --conversation``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from loguru import logger

from assistant_monitoring.logs.names import FILE_ONLY

_log = logger.bind(logger_name="assistant.events")


@contextmanager
def log_context(**context: Any) -> Iterator[None]:
    """Bind ``conversation_id``, ``message_id``... to every line logged inside (async-safe)."""
    with logger.contextualize(**context):
        yield


def log_pipeline_summary(
    *,
    conversation_id: str,
    message_id: str,
    status: str,
    total_seconds: float,
    stage_seconds: Mapping[str, float],
    error_type: str | None = None,
    failed_stage: str | None = None,
) -> None:
    """Log the execution summary of one pipeline run.

    INFO when it succeeded, ERROR when it failed, WARNING when it was interrupted
    (SIGTERM, Ctrl-C: nothing failed, but the answer is missing).
    """
    stages = " ".join(f"{name}={seconds * 1000:.1f}ms" for name, seconds in stage_seconds.items())
    outcome = status if error_type is None else f"{status} at {failed_stage}: {error_type}"
    level = {"success": "INFO", "interrupted": "WARNING"}.get(status, "ERROR")
    fields: dict[str, Any] = {
        "event": "pipeline_summary",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "status": status,
        "duration_ms": round(total_seconds * 1000, 3),
        "stages_ms": {name: round(seconds * 1000, 3) for name, seconds in stage_seconds.items()},
    }
    if error_type is not None:
        fields.update(error_type=error_type, failed_stage=failed_stage)
    if status == "failure":
        # The CLI shows the error itself, in one line; the terminal needs no second one.
        fields[FILE_ONLY] = True
    # depth=1: the line names the caller's module as its logger, not this helper's.
    logger.opt(depth=1).bind(**fields).log(
        level, f"pipeline {outcome} in {total_seconds * 1000:.1f}ms ({stages})"
    )


def log_classification(
    *, classifier: str, label: str, confidence: float, duration_seconds: float
) -> None:
    """Log one classifier result (DEBUG)."""
    logger.opt(depth=1).bind(
        event="classification",
        classifier=classifier,
        label=label,
        confidence=round(confidence, 4),
        duration_ms=round(duration_seconds * 1000, 3),
    ).debug(f"classifier {classifier}: {label} ({confidence:.2f})")


def log_error(error: BaseException, *, context: str, **fields: Any) -> None:
    """Log an error with where it happened and its type, traceback included (ERROR)."""
    logger.opt(exception=error, depth=1).bind(
        event="error", error_type=type(error).__name__, context=context, **fields
    ).error(f"{context}: {type(error).__name__}: {error}")
