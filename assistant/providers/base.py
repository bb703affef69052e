"""What a provider does, whatever its SDK: generate an answer, streamed or not.

Retries (tenacity, transient errors only) and the circuit breaker wrap every
provider the same way, in :mod:`assistant.providers.calling`; a provider only
translates between our messages and its SDK, and its errors into ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChatMessage:
    """One turn sent to the model."""

    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider needs for one answer."""

    model: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    temperature: float
    system: str | None = None
    stream: bool = True


@dataclass
class Usage:
    """Token usage of one answer, by type, each token counted once.

    ``input`` is input billed at the full price (cache reads and writes excluded);
    ``cache_write`` is the 5-minute tier; ``output`` includes ``reasoning``, which
    only says how many of the output tokens were spent thinking.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    def as_tokens(self) -> dict[str, int]:
        """The counts by type, as LlmCall.usage and ModelPrice.cost take them."""
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
            "cache_write_1h": self.cache_write_1h,
            "reasoning": self.reasoning,
        }


@dataclass
class Generation:
    """One answer."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None  # as the provider says it: end_turn, stop, length...
    response_id: str | None = None


TextCallback = Callable[[str], None]


class Provider(Protocol):
    """An LLM provider behind its official SDK."""

    name: str

    async def generate(
        self, request: GenerationRequest, *, on_text: TextCallback | None = None
    ) -> Generation:
        """Produce the answer; with ``request.stream``, call ``on_text`` per piece."""
        ...

    async def close(self) -> None:
        """Release the SDK client."""
        ...
