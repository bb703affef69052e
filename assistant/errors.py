"""Errors of the assistant, shown to users: each says what failed and how to fix it.

Lower-level errors (SDK, HTTP, SQLite) are translated at the boundary, as httpx
maps httpcore's. ``critical`` marks a service that is down (it trips breakers and
pages people); ``service`` names the breaker it belongs to.
"""

from __future__ import annotations

from assistant_monitoring.errors import EXIT_FAILURE, EXIT_USAGE, MonitoringError
from assistant_monitoring.servicenames import llm_service


class AssistantError(MonitoringError):
    """Base of the assistant's errors."""

    exit_code = EXIT_FAILURE
    critical = False
    service: str | None = None
    # Set when the error came through a breaker-guarded call, which has counted it;
    # the CLI's last-resort handler trips the breaker only for errors that did not.
    breaker_recorded = False
    # The same error would meet every next message (no key, a rejected key, an unknown
    # model): a piped `chat` stops at the first one instead of failing each line.
    ends_session = False


class DatabaseError(AssistantError):
    """The conversations database failed."""

    service = "database"


class ProviderError(AssistantError):
    """The LLM provider failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.service = llm_service(provider)


class MissingApiKey(ProviderError):
    """No API key configured."""

    exit_code = EXIT_USAGE
    ends_session = True


class ProviderAuthError(ProviderError):
    """The provider rejected the key (401/403)."""

    exit_code = EXIT_USAGE
    ends_session = True


class ProviderRequestError(ProviderError):
    """The provider rejected the request (400/404/422): wrong model name, bad input."""

    @property
    def ends_session(self) -> bool:  # type: ignore[override]
        """A 404 is the model (every message meets it); a 400 may be this message only."""
        return self.status == 404


class ProviderUnavailable(ProviderError):
    """The provider is down, overloaded or unreachable, after the retries."""

    critical = True


class SecretAsName(AssistantError):
    """A key pasted where a name or an id goes (``--model``, ``--conversation``).

    Refused before anything is sent or stored: a model name is sent to the provider,
    stored with the run and becomes a metric label; an id is stored and logged.
    """

    exit_code = EXIT_USAGE
    ends_session = True  # the same option meets every next message


class ConversationNotFound(AssistantError):
    """``--conversation ID`` names no conversation."""

    exit_code = EXIT_USAGE
    ends_session = True
