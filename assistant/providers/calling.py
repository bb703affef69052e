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
    SecretAsName,
)
from assistant.providers.base import Generation, GenerationRequest, Provider, TextCallback
from assistant_monitoring.breaker import CircuitBreaker, CircuitOpenError
from assistant_monitoring.breaker.classify import retry_after_of, status_of
from assistant_monitoring.errors import is_interruption
from assistant_monitoring.metrics import Instrumentation, LlmAttempt, LlmCall
from assistant_monitoring.metrics.labels import UNVERIFIED_MODEL
from assistant_monitoring.redact import holds_secret, redact_text
from assistant_monitoring.tracing import AttributeValue, Span, add_event, span

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
    server: tuple[str, int] = ("", 0),
    record_content: bool = False,
) -> tuple[Generation, LlmCall]:
    """Generate an answer with retries, the breaker, metrics, logs and spans.

    ``model_known``: the model is configured or priced. Otherwise (``--model``
    typed by the user) its metrics are labelled ``unverified`` unless the provider
    answers, which proves it a model's name rather than any text.
    ``server``: the host and port the SDK talks to, for ``server.address``/``port``.
    ``record_content``: put the prompt and answer (redacted) on the attempt spans
    (``LOG_CONTENT=true``).
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

    if holds_secret(request.model):
        # The pipeline refuses it first; any other caller is stopped here, before the
        # model name reaches a request, a metric label, a span or a run.
        raise SecretAsName("the model name looks like an API key: nothing was sent")
    attempts = 0
    label = request.model if model_known else UNVERIFIED_MODEL
    async with instrumentation.llm_call(provider.name, label) as call:
        if on_call is not None:
            on_call(call)  # the caller keeps the retries and timings even if this fails
        each = _Attempts(
            provider, request, instrumentation, call, label, server, record_content, on_text
        )

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
            add_event(  # on the generate stage's span, beside the failed attempt's
                "gen_ai.retry",
                {
                    "assistant.attempt": state.attempt_number,
                    "error.type": type(error).__name__,
                    "assistant.retry.delay_seconds": round(state.upcoming_sleep, 3),
                },
            )
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
                retry=retry_if_exception(lambda e: is_transient(e) and not each.streamed),
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
                    return await each.run()
            raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

        try:
            generation: Generation = await breaker.acall(attempt_all)
        except CircuitOpenError:
            call.fail("circuit_open")
            add_event("circuit_breaker.rejected", {"assistant.breaker": breaker.service})
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


class _Attempts:
    """Runs each attempt of one LLM call in its own ``chat {model}`` span.

    Each attempt is also reported to the instrumentation on its own
    (:class:`LlmAttempt`): the GenAI metrics time one operation, not the retries
    and backoff sleeps around it.
    """

    def __init__(
        self,
        provider: Provider,
        request: GenerationRequest,
        instrumentation: Instrumentation,
        call: LlmCall,
        label: str,
        server: tuple[str, int],
        record_content: bool,
        on_text: TextCallback | None,
    ) -> None:
        self.provider = provider
        self.request = request
        self.instrumentation = instrumentation
        self.call = call
        self.label = label
        self.address, self.port = server
        self.record_content = record_content
        self.on_text = on_text
        self.streamed = False  # once text reached the terminal, no more retries
        self._current: tuple[Span, LlmAttempt, float] | None = None

    def forward(self, piece: str) -> None:
        """Pass a streamed piece on; the first one of a streamed answer is timed."""
        if self.request.stream and not self.streamed:  # a whole answer has no first chunk
            self.call.first_token()
            if self._current is not None:
                chat, record, started = self._current
                record.time_to_first_chunk = self.instrumentation.clock() - started
                chat.set_attribute(
                    "gen_ai.response.time_to_first_chunk", record.time_to_first_chunk
                )
                chat.add_event("gen_ai.first_chunk")
        self.streamed = True
        if self.on_text is not None:
            self.on_text(piece)

    async def run(self) -> Generation:
        """One attempt, in its span; its failure propagates (tenacity decides on a retry)."""
        clock = self.instrumentation.clock
        record = LlmAttempt(self.provider.name, self.label, self.address, self.port)
        attributes = _request_attributes(self.provider.name, self.request, self.address, self.port)
        started = clock()
        with span(
            self.instrumentation.tracer, f"chat {self.label}", kind="client", attributes=attributes
        ) as chat:
            if self.record_content and chat.recording:  # redacting a history is not free
                chat.set_attributes(_input_content(self.request))
            self._current = (chat, record, started)
            try:
                generation = await self.provider.generate(self.request, on_text=self.forward)
            except BaseException as error:
                record.duration = clock() - started
                if not is_interruption(error):  # stopped from outside: no outcome to time
                    record.error_type = type(error).__name__
                    self.instrumentation.llm_attempt(record)
                raise
            finally:
                self._current = None
            record.duration = clock() - started
            record.request_model = self.request.model  # answered: a real model's name
            record.response_model = generation.model
            tokens = generation.usage.as_tokens()
            record.reasoning_tokens = tokens.pop("reasoning")
            record.tokens = tokens
            self.instrumentation.llm_attempt(record)
            chat.set_attributes(_response_attributes(generation, record))
            if self.record_content and chat.recording:
                chat.set_attributes(_output_content(generation))
            return generation


def _request_attributes(
    provider: str, request: GenerationRequest, address: str, port: int
) -> dict[str, AttributeValue]:
    """The GenAI semantic-convention attributes of a chat request."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": redact_text(request.model)[:200],  # --model is user text
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.temperature": request.temperature,
    }
    if address:
        attributes["server.address"] = address
        attributes["server.port"] = port
    return attributes


def _response_attributes(generation: Generation, record: LlmAttempt) -> dict[str, AttributeValue]:
    """What the answer says: model, finish reason, usage (GenAI conventions).

    ``gen_ai.usage.input_tokens`` includes cached tokens, as the conventions ask
    (:attr:`LlmAttempt.input_tokens`, as the metrics count them); the cache reads
    and writes are also given apart.
    """
    usage = generation.usage
    attributes: dict[str, AttributeValue] = {
        "gen_ai.response.model": generation.model,
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": usage.output,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read,
        "gen_ai.usage.cache_creation.input_tokens": record.cache_write_tokens,
    }
    if usage.reasoning:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning
    if generation.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [generation.finish_reason]
    if generation.response_id:
        attributes["gen_ai.response.id"] = generation.response_id
    return attributes


def _input_content(request: GenerationRequest) -> dict[str, AttributeValue]:
    """The prompt as ``gen_ai.input.messages`` (redacted like the logs)."""
    import json

    messages = [
        {"role": m.role, "parts": [{"type": "text", "content": redact_text(m.content)}]}
        for m in request.messages
    ]
    attributes: dict[str, AttributeValue] = {"gen_ai.input.messages": json.dumps(messages)}
    if request.system:
        attributes["gen_ai.system_instructions"] = json.dumps(
            [{"type": "text", "content": redact_text(request.system)}]
        )
    return attributes


def _output_content(generation: Generation) -> dict[str, AttributeValue]:
    """The answer as ``gen_ai.output.messages`` (redacted like the logs)."""
    import json

    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": redact_text(generation.text)}],
        "finish_reason": generation.finish_reason or "",
    }
    return {"gen_ai.output.messages": json.dumps([message])}
