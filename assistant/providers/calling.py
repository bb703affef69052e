"""One resilient, instrumented LLM call: retries inside, circuit breaker outside.

    breaker( retry( provider.generate ) )

* Retries (tenacity): only transient errors (connection errors, timeouts, 429, 5xx and
  529, an unreadable body), exponential backoff with jitter, a 429's ``Retry-After``
  honoured, bounded in attempts (``LLM_MAX_RETRIES``) and in total time; each retry
  is counted and logged. Once an answer has started streaming to the terminal it is
  not retried (that would print it twice).
* The breaker sees one logical call: it counts a failure only when the retries ran
  out, and when open it refuses the call before any retry is attempted.
* SDK errors are translated into the assistant's own, with a fix in the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from assistant.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailable,
)
from assistant.providers.base import Generation, GenerationRequest, Provider, TextCallback
from assistant_monitoring.breaker import CircuitBreaker, CircuitOpenError
from assistant_monitoring.breaker.classify import retry_after_of, status_of
from assistant_monitoring.metrics import Instrumentation, LlmCall
from assistant_monitoring.metrics.labels import UNVERIFIED_MODEL
from assistant_monitoring.redact import redact_text

_NAMES = {"anthropic": "Anthropic", "openai": "OpenAI"}
_CONNECTION_WORDS = ("Connection", "Connect", "RemoteProtocol", "ReadError", "Network")
_TIMEOUT_WORDS = ("Timeout", "TimedOut")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts after the first, total time, backoff bounds."""

    max_retries: int = 3
    max_total_seconds: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0


def _kind(error: BaseException) -> str:
    names = [cls.__name__ for cls in type(error).__mro__]
    if any(word in name for name in names for word in _TIMEOUT_WORDS) or isinstance(
        error, TimeoutError
    ):
        return "timeout"
    if any(word in name for name in names for word in _CONNECTION_WORDS) or isinstance(
        error, ConnectionError
    ):
        return "connection"
    if isinstance(error, ValueError):  # json.JSONDecodeError: a broken body
        return "malformed"
    return "other"


def is_transient(error: BaseException) -> bool:
    """Whether retrying could help."""
    status = status_of(error)
    if status is not None:
        return status == 429 or status >= 500
    return _kind(error) in ("timeout", "connection", "malformed")


def translate(
    error: BaseException, *, provider: str, model: str, key_hint: str, attempts: int
) -> ProviderError:
    """The assistant's error for an SDK error, with what to do about it."""
    name = _NAMES.get(provider, provider)
    status = status_of(error)
    detail = redact_text(str(getattr(error, "message", None) or error))[:200]
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if status in (401, 403):
        return ProviderAuthError(
            f"{name} rejected the API key ({status}): {key_hint}",
            provider=provider,
            status=status,
        )
    if status is not None and status != 429 and status < 500:
        hint = f"check LLM_MODEL ('{model}')" if status == 404 else "check the request"
        return ProviderRequestError(
            f"{name} rejected the request ({status}): {detail}; {hint}",
            provider=provider,
            status=status,
        )
    if status == 429:
        message = f"{name} is rate limiting us (429){tried}: wait a minute and try again"
    elif status is not None:
        message = f"{name} is unavailable ({status}){tried}: try again later"
    elif _kind(error) == "timeout":
        message = f"{name} did not answer in time{tried}: try again, or raise LLM_TIMEOUT"
    elif _kind(error) == "connection":
        message = f"cannot reach {name}{tried} ({detail}): check LLM_BASE_URL and the network"
    else:
        message = (
            f"{name} sent an answer we could not read{tried} ({type(error).__name__}: {detail})"
        )
    return ProviderUnavailable(message, provider=provider, status=status)


async def call_model(
    provider: Provider,
    request: GenerationRequest,
    *,
    breaker: CircuitBreaker,
    instrumentation: Instrumentation,
    policy: RetryPolicy,
    key_hint: str,
    on_text: TextCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_call: Callable[[LlmCall], None] | None = None,
    model_known: bool = True,
) -> tuple[Generation, LlmCall]:
    """Generate an answer with retries, the breaker, metrics and logs.

    ``model_known``: the model is configured or priced. Otherwise (``--model``
    typed by the user) its metrics are labelled ``unverified`` unless the provider
    answers, which proves it a model's name rather than any text.
    """
    from loguru import logger
    from tenacity import (
        AsyncRetrying,
        RetryCallState,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    streamed = False
    attempts = 0

    label = request.model if model_known else UNVERIFIED_MODEL
    async with instrumentation.llm_call(provider.name, label) as call:
        if on_call is not None:
            on_call(call)  # the caller keeps the retries and timings even if this fails

        def forward(piece: str) -> None:
            nonlocal streamed
            streamed = True
            if request.stream:  # a complete answer has no "first token"
                call.first_token()
            if on_text is not None:
                on_text(piece)

        backoff = wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = retry_after_of(error) if error is not None else None
            if retry_after is not None:
                return min(retry_after, policy.max_retry_after)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            # Logged at INFO: a retry is handled; the run's footer and metrics count it.
            call.retry()
            error = state.outcome.exception() if state.outcome else None
            logger.bind(
                event="llm_retry", provider=provider.name, attempt=state.attempt_number
            ).info(
                f"{provider.name}: attempt {state.attempt_number} failed "
                f"({type(error).__name__}: {redact_text(str(error))[:120]}); retrying in "
                f"{state.upcoming_sleep:.2f}s"
            )

        async def attempt_all() -> Generation:
            nonlocal attempts
            retrying = AsyncRetrying(
                retry=retry_if_exception(lambda e: is_transient(e) and not streamed),
                stop=stop_after_attempt(policy.max_retries + 1)
                | stop_after_delay(policy.max_total_seconds),
                wait=wait,
                sleep=sleep,
                before_sleep=before_sleep,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return await provider.generate(request, on_text=forward)
            raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

        try:
            generation: Generation = await breaker.acall(attempt_all)
        except CircuitOpenError:
            call.fail("circuit_open")
            raise
        except Exception as error:
            if status_of(error) is None and _kind(error) == "other":
                call.fail("error")
                raise  # a bug on our side: keep its own type and traceback
            translated = translate(
                error,
                provider=provider.name,
                model=request.model,
                key_hint=key_hint,
                attempts=attempts,
            )
            call.fail(
                "rejected"
                if isinstance(translated, ProviderRequestError | ProviderAuthError)
                else "error"
            )
            translated.breaker_recorded = True  # the breaker above already counted it
            raise translated from error
        call.model = request.model  # the provider served it: a real model's name
        call.usage(**generation.usage.as_tokens())
    return generation, call
