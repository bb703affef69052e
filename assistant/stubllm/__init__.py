"""A stub LLM server speaking the Anthropic and OpenAI APIs, with fault injection."""

from assistant.stubllm.server import FaultPlan, RequestRecord, StubLLMServer

__all__ = ["FaultPlan", "RequestRecord", "StubLLMServer"]
