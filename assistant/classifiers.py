"""Fast, offline classifiers: what kind of message is this, and is it sensitive?

Each returns a label and a confidence in 0..1. They run concurrently (threads, each
under ``CLASSIFIER_TIMEOUT_MS``) when ``ENABLE_PARALLEL_CLASSIFICATION`` is on, one
after the other otherwise. A classifier that fails or times out degrades the run
(label ``unknown``, confidence 0, counted and logged); it never fails it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from assistant_monitoring.logs import log_classification
from assistant_monitoring.metrics import Instrumentation

Classifier = Callable[[str], tuple[str, float]]

_QUESTION_START = re.compile(
    r"^\s*(what|why|how|when|where|who|whom|which|is|are|am|can|could|does|do|did|should|"
    r"would|will|was|were|may|might|have|has)\b",
    re.IGNORECASE,
)
_COMMAND_START = re.compile(
    r"^\s*(please\s+)?(run|create|delete|remove|list|show|open|send|set|make|start|stop|"
    r"install|deploy|remind|schedule|write|generate|translate|summari[sz]e|convert|add|"
    r"update|rename|move|copy|find|search|book|order|explain|give|tell)\b",
    re.IGNORECASE,
)
_CODE_MARKERS = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bimport \w+|\bfunction\b|\breturn\b|=>|\bTraceback\b|"
    r"\bException\b|\berror:|\bstack ?trace\b|\bregex\b|\bSELECT\b.+\bFROM\b|[{};]\s*$|"
    r"\b(python|javascript|typescript|rust|golang|java|sql|bash|compile|segfault|bug)\b",
    re.IGNORECASE | re.MULTILINE,
)
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|good (morning|evening)|bye)\b", re.IGNORECASE
)

_SENSITIVE = [
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), 0.99),  # an API key
    (re.compile(r"\b(password|passwd|secret|api[_ -]?key|token)\s*[:=]", re.IGNORECASE), 0.9),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0.9),  # US SSN shape
    (re.compile(r"\b(?:\d[ -]?){13,16}\b"), 0.8),  # a card number shape
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), 0.7),  # an e-mail address
    (re.compile(r"\+?\d[\d ()-]{8,}\d"), 0.6),  # a phone number
]


def classify_intent(text: str) -> tuple[str, float]:
    """question, code, command or chat, with a rule-based confidence."""
    scores = {"question": 0.0, "code": 0.0, "command": 0.0, "chat": 0.2}
    stripped = text.strip()
    if stripped.endswith("?"):
        scores["question"] += 0.6
    if _QUESTION_START.search(stripped):
        scores["question"] += 0.35
    code_hits = len(_CODE_MARKERS.findall(stripped))
    scores["code"] += min(0.3 * code_hits, 0.95)
    if _COMMAND_START.search(stripped):
        scores["command"] += 0.7
    if _GREETING.search(stripped):
        scores["chat"] += 0.7
    label = max(scores, key=lambda name: scores[name])
    total = sum(scores.values())
    return label, round(scores[label] / total if total else 0.0, 4)


def classify_safety(text: str) -> tuple[str, float]:
    """``sensitive`` when the message carries a secret or personal data, else ``safe``."""
    strongest = 0.0
    for pattern, weight in _SENSITIVE:
        if pattern.search(text):
            strongest = max(strongest, weight)
    if strongest:
        return "sensitive", strongest
    return "safe", 0.9


CLASSIFIERS: dict[str, Classifier] = {"intent": classify_intent, "safety": classify_safety}


@dataclass(frozen=True)
class Classification:
    """One classifier's result on one message."""

    classifier: str
    label: str
    confidence: float
    status: str  # ok, failed, timeout
    duration_seconds: float
    error: str | None = None

    def as_record(self) -> dict[str, object]:
        """The form stored in pipeline runs."""
        record: dict[str, object] = {
            "label": self.label,
            "confidence": self.confidence,
            "status": self.status,
            "duration_ms": round(self.duration_seconds * 1000, 3),
        }
        if self.error:
            record["error"] = self.error
        return record


async def run_classifier(
    name: str,
    classifier: Classifier,
    text: str,
    *,
    timeout: float,
    instrumentation: Instrumentation,
) -> Classification:
    """Run one classifier in a thread under ``timeout``; never raises."""
    from loguru import logger

    started = time.perf_counter()
    try:
        async with instrumentation.classifier(name):
            label, confidence = await asyncio.wait_for(asyncio.to_thread(classifier, text), timeout)
    except Exception as error:
        elapsed = time.perf_counter() - started
        status = "timeout" if isinstance(error, TimeoutError) else "failed"
        reason = (
            f"timed out after {timeout * 1000:g} ms"
            if status == "timeout"
            else f"{type(error).__name__}: {error}"
        )
        logger.bind(event="classification", classifier=name, status=status).warning(
            f"classifier {name} {status}: {reason}; continuing without it"
        )
        return Classification(name, "unknown", 0.0, status, elapsed, reason)
    elapsed = time.perf_counter() - started
    instrumentation.classification(name, confidence)
    log_classification(
        classifier=name, label=label, confidence=confidence, duration_seconds=elapsed
    )
    return Classification(name, label, confidence, "ok", elapsed)


async def classify(
    text: str,
    *,
    parallel: bool,
    timeout: float,
    instrumentation: Instrumentation,
    classifiers: dict[str, Classifier] | None = None,
) -> list[Classification]:
    """Run every classifier on ``text``, concurrently when ``parallel``."""
    chosen = classifiers if classifiers is not None else CLASSIFIERS
    runs = [
        run_classifier(name, fn, text, timeout=timeout, instrumentation=instrumentation)
        for name, fn in chosen.items()
    ]
    if parallel:
        return list(await asyncio.gather(*runs))
    return [await run for run in runs]
