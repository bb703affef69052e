"""OpenAI's Chat Completions API (and compatible servers) through the official SDK."""

from __future__ import annotations

from typing import Any

from assistant.providers.base import Generation, GenerationRequest, TextCallback, Usage
from assistant_monitoring.endpoints import sdk_base_url

# Reasoning models accept neither max_tokens nor a temperature other than the default.
_REASONING_PREFIXES = ("gpt-5", "o1", "o3", "o4")


class OpenAIProvider:
    """GPT models (or an OpenAI-compatible server) via ``openai.AsyncOpenAI``."""

    name = "openai"

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float) -> None:
        import openai  # ~1 s: only the commands that talk to a model pay for it

        self._compatible_server = base_url is not None
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=sdk_base_url("openai", base_url),
            max_retries=0,
            timeout=timeout,
        )

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        kwargs: dict[str, Any] = {"model": request.model, "messages": messages}
        reasoning = request.model.startswith(_REASONING_PREFIXES)
        # api.openai.com wants max_completion_tokens; compatible servers (vLLM, Ollama,
        # llama.cpp) still mostly speak max_tokens.
        if self._compatible_server and not reasoning:
            kwargs["max_tokens"] = request.max_tokens
        else:
            kwargs["max_completion_tokens"] = request.max_tokens
        if not reasoning:
            kwargs["temperature"] = request.temperature
        return kwargs

    async def generate(
        self, request: GenerationRequest, *, on_text: TextCallback | None = None
    ) -> Generation:
        """One Chat Completions call, streamed when ``request.stream``."""
        kwargs = self._arguments(request)
        usage = Usage()
        model = request.model
        finish_reason: str | None = None
        response_id: str | None = None
        if request.stream:
            parts: list[str] = []
            stream = await self._client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in stream:
                model = chunk.model or model
                response_id = chunk.id or response_id
                if chunk.choices:
                    finish_reason = chunk.choices[0].finish_reason or finish_reason
                    piece = chunk.choices[0].delta.content or ""
                    if piece:
                        parts.append(piece)
                        if on_text is not None:
                            on_text(piece)
                if chunk.usage is not None:
                    usage = usage_from_sdk(chunk.usage)
            text = "".join(parts)
        else:
            completion = await self._client.chat.completions.create(**kwargs)
            model = completion.model or model
            response_id = completion.id
            text = completion.choices[0].message.content or "" if completion.choices else ""
            if completion.choices:
                finish_reason = completion.choices[0].finish_reason
            if completion.usage is not None:
                usage = usage_from_sdk(completion.usage)
            if on_text is not None and text:
                on_text(text)
        return Generation(
            text=text,
            model=model,
            usage=usage,
            finish_reason=finish_reason,
            response_id=response_id,
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def usage_from_sdk(raw: Any) -> Usage:
    """Our token counts from an ``openai.types.CompletionUsage``.

    OpenAI's ``prompt_tokens`` include ``cached_tokens``, so the cached ones are taken
    out of ``input`` (else they would be billed twice); ``completion_tokens`` include
    ``reasoning_tokens``. OpenAI does not bill cache writes: a compatible server's
    ``cache_write_tokens`` stay in ``input``, priced as plain input.
    """
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    cached = int(getattr(prompt_details, "cached_tokens", 0) or 0) if prompt_details else 0
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    output_details = getattr(raw, "completion_tokens_details", None)
    reasoning = int(getattr(output_details, "reasoning_tokens", 0) or 0) if output_details else 0
    return Usage(
        input=max(0, prompt - cached),
        output=int(getattr(raw, "completion_tokens", 0) or 0),
        cache_read=min(cached, prompt) if prompt else cached,
        reasoning=reasoning,
    )
