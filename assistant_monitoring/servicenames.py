"""The names of the services the toolkit watches, one spelling everywhere.

A service name is a circuit breaker's id, a health check's component, and the
context label of an error counted against it: ``llm:anthropic`` must be spelled the
same in all three, or a breaker, its health check and its errors stop matching.
"""

from __future__ import annotations

DATABASE = "database"


def llm_service(provider: str) -> str:
    """The service name of an LLM provider: ``llm:anthropic``, ``llm:openai``."""
    return f"llm:{provider}"
