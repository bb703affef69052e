"""LLM providers (Anthropic, OpenAI) behind one interface, and the resilient call."""

from __future__ import annotations

from collections.abc import Callable

from assistant.errors import MissingApiKey
from assistant.providers.base import (
    ChatMessage,
    Generation,
    GenerationRequest,
    Provider,
    TextCallback,
    Usage,
)
from assistant.providers.calling import RetryPolicy, call_model, is_transient, translate
from assistant_monitoring.settings import Settings


class DeferredProvider:
    """The configured provider, its SDK imported and its client built on first use.

    Importing an SDK costs 0.5-1.4 s (BENCHMARKS.md, "The test suite"). A call the
    circuit breaker refuses never reaches :meth:`generate`, so an ``ask`` refused
    by an open breaker never pays for it; :meth:`build` does it ahead of time, so
    the import stays outside the generate stage's timing when the call will be made.
    """

    def __init__(self, name: str, build: Callable[[], Provider]) -> None:
        self.name = name
        self._build = build
        self._built: Provider | None = None

    @property
    def built(self) -> bool:
        """Whether the SDK client exists (its module imported)."""
        return self._built is not None

    def build(self) -> Provider:
        """The real provider, built now if it was not yet."""
        if self._built is None:
            self._built = self._build()
        return self._built

    async def generate(
        self, request: GenerationRequest, *, on_text: TextCallback | None = None
    ) -> Generation:
        """The real provider's answer."""
        return await self.build().generate(request, on_text=on_text)

    async def close(self) -> None:
        """Close the SDK client, if one was built."""
        if self._built is not None:
            await self._built.close()


def make_provider(settings: Settings) -> DeferredProvider:
    """The configured provider, not built yet; MissingApiKey when there is no key."""
    llm = settings.llm
    if llm.api_key is None or not llm.api_key.get_secret_value():
        fallback = "ANTHROPIC_API_KEY" if llm.provider == "anthropic" else "OPENAI_API_KEY"
        raise MissingApiKey(
            f"no API key for {llm.provider}: {settings.hint('LLM_API_KEY')} (or {fallback})",
            provider=llm.provider,
        )
    key = llm.api_key.get_secret_value()
    base_url, timeout = llm.base_url, llm.timeout_seconds

    def build() -> Provider:
        if llm.provider == "anthropic":
            from assistant.providers.anthropic_provider import AnthropicProvider

            return AnthropicProvider(api_key=key, base_url=base_url, timeout=timeout)
        from assistant.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(api_key=key, base_url=base_url, timeout=timeout)

    return DeferredProvider(llm.provider, build)


__all__ = [
    "ChatMessage",
    "DeferredProvider",
    "Generation",
    "GenerationRequest",
    "Provider",
    "RetryPolicy",
    "TextCallback",
    "Usage",
    "call_model",
    "is_transient",
    "make_provider",
    "translate",
]
