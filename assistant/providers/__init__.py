"""LLM providers (Anthropic, OpenAI) behind one interface, and the resilient call."""

from __future__ import annotations

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


def make_provider(settings: Settings) -> Provider:
    """The configured provider; MissingApiKey when there is no key."""
    llm = settings.llm
    if llm.api_key is None or not llm.api_key.get_secret_value():
        fallback = "ANTHROPIC_API_KEY" if llm.provider == "anthropic" else "OPENAI_API_KEY"
        raise MissingApiKey(
            f"no API key for {llm.provider}: {settings.hint('LLM_API_KEY')} (or {fallback})",
            provider=llm.provider,
        )
    key = llm.api_key.get_secret_value()
    if llm.provider == "anthropic":
        from assistant.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(api_key=key, base_url=llm.base_url, timeout=llm.timeout_seconds)
    from assistant.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=key, base_url=llm.base_url, timeout=llm.timeout_seconds)


__all__ = [
    "ChatMessage",
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
