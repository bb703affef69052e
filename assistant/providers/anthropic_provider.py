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
        usage = message.usage
        return Generation(
            text=text,
            model=message.model or request.model,
            usage=Usage(
                input=usage.input_tokens or 0,
                output=usage.output_tokens or 0,
                cache_read=usage.cache_read_input_tokens or 0,
                cache_write=usage.cache_creation_input_tokens or 0,
            ),
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
