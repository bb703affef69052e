"""The configured model, as the pipeline calls it: breaker, retries, metrics and spans.

:class:`LlmClient` owns the provider (built on first use: its SDK import costs
0.5-1.4 s) and the provider's circuit breaker, and answers one request through
:func:`~assistant.providers.calling.call_model`. The call's record (retries,
timings, cost) goes to whoever asked, through ``on_call``, the moment the call
starts, so a caller still has it when the call fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from assistant.errors import MissingApiKey
from assistant.providers import (
    DeferredProvider,
    Generation,
    GenerationRequest,
    Provider,
    RetryPolicy,
    TextCallback,
    call_model,
    make_provider,
)
from assistant_monitoring.breaker import BreakerRegistry, CircuitBreaker
from assistant_monitoring.endpoints import USERINFO_PROBLEM, has_userinfo, server_address
from assistant_monitoring.metrics import Instrumentation, LlmCall
from assistant_monitoring.servicenames import llm_service
from assistant_monitoring.settings import Settings


class LlmClient:
    """One resilient LLM call at a time with the configured provider."""

    def __init__(
        self,
        settings: Settings,
        breakers: BreakerRegistry,
        instrumentation: Instrumentation,
        provider: Provider | None = None,
    ) -> None:
        self.settings = settings
        self.breakers = breakers
        self.instrumentation = instrumentation
        self.provider = provider

    @property
    def breaker(self) -> CircuitBreaker:
        """The configured provider's circuit breaker (shared by every process)."""
        return self.breakers.get(llm_service(self.settings.llm.provider))

    def prepare(self) -> None:
        """Build the provider now (its SDK import), outside any stage timing.

        Without an API key, or with an SDK that fails to import, it does nothing: the
        run then fails in its generate stage (which tries again), with the error, and
        is recorded as failed like any other. With the provider's breaker open the
        SDK is not imported at all: the call will be refused, and a refusal should
        cost what a refusal costs.
        """
        if self.provider is None:
            with contextlib.suppress(MissingApiKey):
                self.provider = make_provider(self.settings)
        provider = self.provider
        # Built already (each message of a chat prepares): no breaker state to read.
        if (
            isinstance(provider, DeferredProvider)
            and not provider.built
            and not self.breaker.refusing
        ):
            with contextlib.suppress(ImportError):
                provider.build()

    async def generate(
        self,
        request: GenerationRequest,
        *,
        on_text: TextCallback | None = None,
        on_call: Callable[[LlmCall], None] | None = None,
    ) -> tuple[Generation, LlmCall]:
        """One call: the answer and its record, or the error (``on_call`` saw the record)."""
        if self.provider is None:
            self.provider = make_provider(self.settings)
        provider = self.provider
        breaker = self.breakers.get(llm_service(provider.name))
        if isinstance(provider, DeferredProvider) and not provider.built and not breaker.refusing:
            # Not built yet: the breaker refused when prepare() looked, and lets calls
            # through now. Built here, before the call: the SDK import is then no
            # attempt's duration or time to first token, and an SDK that fails to
            # import is not the provider's answer to a half-open trial (an error the
            # breaker ignores counts as one that succeeded, and would close it).
            provider.build()
        llm = self.settings.llm
        return await call_model(
            self.provider,
            request,
            breaker=breaker,
            instrumentation=self.instrumentation,
            policy=RetryPolicy(
                max_retries=llm.max_retries, max_total_seconds=llm.max_retry_seconds
            ),
            # With userinfo in LLM_BASE_URL the key was never sent (see endpoints.py):
            # a 401 is about those credentials, and checking LLM_API_KEY would not help.
            key_hint=USERINFO_PROBLEM
            if has_userinfo(llm.base_url)
            else self.settings.hint("LLM_API_KEY", verb="check"),
            on_text=on_text,
            on_call=on_call,
            model_known=request.model == llm.model
            or self.instrumentation.prices.knows(request.model),
            server=server_address(self.provider.name, llm.base_url),
            record_content=self.settings.logging.log_content,
        )

    async def close(self) -> None:
        """Close the provider's SDK client, if one was built."""
        if self.provider is not None:
            await self.provider.close()
