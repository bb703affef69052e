"""Anthropic's Messages API through the official SDK (imported only when used)."""

from __future__ import annotations

from typing import Any

from assistant.providers.base import Generation, GenerationRequest, TextCallback, Usage
from assistant_monitoring.endpoints import sdk_base_url


class AnthropicProvider:
    """Claude models via ``anthropic.AsyncAnthropic``."""

    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float) -> None:
        import inspect

        import anthropic  # ~1 s: only the commands that talk to a model pay for it

        # The SDK's own retries are off: ours (tenacity) count and log each retry.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=sdk_base_url("anthropic", base_url),
            max_retries=0,
            timeout=timeout,
        )
        # Recent SDKs dropped `temperature` for newer models; send it where accepted.
        parameters = inspect.signature(self._client.messages.create).parameters
        self._takes_temperature = "temperature" in parameters

    async def generate(
        self, request: GenerationRequest, *, on_text: TextCallback | None = None
    ) -> Generation:
        """One Messages API call, streamed when ``request.stream``."""
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if self._takes_temperature:
            kwargs["temperature"] = request.temperature
        if request.system:
            kwargs["system"] = request.system
        if request.stream:
            parts: list[str] = []
            async with self._client.messages.stream(**kwargs) as stream:
                async for text in stream.text_stream:
                    parts.append(text)
                    if on_text is not None:
                        on_text(text)
                message = await stream.get_final_message()
            text = "".join(parts)
        else:
            message = await self._client.messages.create(**kwargs)
            text = "".join(getattr(block, "text", "") for block in message.content)
            if on_text is not None and text:
                on_text(text)
        return Generation(
            text=text,
            model=message.model or request.model,
            usage=usage_from_sdk(message.usage),
            finish_reason=getattr(message, "stop_reason", None),
            response_id=getattr(message, "id", None),
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def usage_from_sdk(raw: Any) -> Usage:
    """Our token counts from an ``anthropic.types.Usage``.

    Anthropic's ``input_tokens`` already exclude cache reads and writes, and
    ``output_tokens`` include thinking (``output_tokens_details.thinking_tokens``).
    Cache writes are split by tier from ``cache_creation`` when the API reports it;
    without it every write is a 5-minute one (the API's default TTL).
    """
    writes = int(getattr(raw, "cache_creation_input_tokens", 0) or 0)
    tiers = getattr(raw, "cache_creation", None)
    one_hour = int(getattr(tiers, "ephemeral_1h_input_tokens", 0) or 0) if tiers else 0
    five_minutes = int(getattr(tiers, "ephemeral_5m_input_tokens", 0) or 0) if tiers else writes
    # Should the total and its tiers ever disagree, the larger total wins and the
    # unexplained rest is priced as 5-minute writes: never drop billed tokens.
    five_minutes += max(0, writes - five_minutes - one_hour)
    details = getattr(raw, "output_tokens_details", None)
    return Usage(
        input=int(getattr(raw, "input_tokens", 0) or 0),
        output=int(getattr(raw, "output_tokens", 0) or 0),
        cache_read=int(getattr(raw, "cache_read_input_tokens", 0) or 0),
        cache_write=five_minutes,
        cache_write_1h=one_hour,
        reasoning=int(getattr(details, "thinking_tokens", 0) or 0) if details else 0,
    )
