"""Which errors count against a service, read from the exception itself.

Works with the anthropic and openai SDK errors (``status_code``, ``response``),
httpx errors and the standard library's, without importing any of them:

* 400, 401, 403, 404, 409, 422 (client errors): IGNORE, the service is up and
  told us we are wrong; retrying or tripping would not help;
* 429: FAILURE that opens the breaker until ``Retry-After``;
* 5xx, 529, timeouts, connection errors, OS errors, SQLite operational errors, an
  unreadable response body: FAILURE;
* anything else (TypeError, KeyError...) is a bug on our side, not the service
  being down: IGNORE, so a bug does not make every later call fail fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    """Whether an error counts against the service."""

    FAILURE = "failure"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Classification:
    """A verdict, with the HTTP status and Retry-After seconds when known."""

    verdict: Verdict
    status: int | None = None
    retry_after: float | None = None


def status_of(error: BaseException) -> int | None:
    """The HTTP status an SDK or httpx error carries, if any."""
    for candidate in (error, getattr(error, "response", None)):
        status = getattr(candidate, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def retry_after_of(error: BaseException) -> float | None:
    """Seconds from a ``retry-after`` header on the error's response, if any."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: rare from LLM APIs; use the reset timeout


_SERVICE_ERROR_WORDS = (
    "Timeout",
    "TimedOut",
    "Connection",
    "Connect",
    "Network",
    "RemoteProtocol",
    "ReadError",
    "OperationalError",
    "DatabaseError",
    "JSONDecodeError",
    "APIError",
    "APIResponseValidationError",
)


def classify_error(error: BaseException) -> Classification:
    """The default classifier for LLM, HTTP and database services."""
    status = status_of(error)
    if status == 429:
        return Classification(Verdict.FAILURE, status, retry_after_of(error) or 1.0)
    if status is not None and 400 <= status < 500:
        return Classification(Verdict.IGNORE, status)
    if status is not None:
        return Classification(Verdict.FAILURE, status)
    if isinstance(error, OSError):
        return Classification(Verdict.FAILURE)
    names = [cls.__name__ for cls in type(error).__mro__]
    if any(word in name for name in names for word in _SERVICE_ERROR_WORDS):
        return Classification(Verdict.FAILURE)
    return Classification(Verdict.IGNORE)
