"""The response bodies of the two APIs the stub speaks: Anthropic Messages, OpenAI Chat.

Only what the official SDKs need to parse a reply (plain and streamed) and what our
instrumentation reads (usage, including cache tokens). Answers are deterministic:
the same request gets the same answer, so tests can assert on it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

MODELS = {
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"],
    "openai": ["gpt-5", "gpt-5-mini", "gpt-4.1"],
}


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: about four characters a token, at least one."""
    return max(1, len(text) // 4)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _has_cache_control(body: dict[str, Any]) -> bool:
    system = body.get("system")
    blocks = system if isinstance(system, list) else []
    for message in body.get("messages", []):
        if isinstance(message.get("content"), list):
            blocks = [*blocks, *message["content"]]
    return any(isinstance(b, dict) and "cache_control" in b for b in blocks)


def answer_for(body: dict[str, Any]) -> tuple[str, int]:
    """The answer text and the input token count of a request."""
    messages = body.get("messages", [])
    prompt = " ".join(_text_of(m.get("content")) for m in messages)
    prompt += " " + _text_of(body.get("system"))
    last_user = next(
        (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    words = last_user.split()
    topic = " ".join(words[:12]) + ("..." if len(words) > 12 else "")
    answer = (
        f"This is the stub model answering: {topic or 'hello'}. "
        "It has no knowledge; it exists so the assistant can be tested end to end."
    )
    return answer, count_tokens(prompt)


def chunks(text: str, size: int = 3) -> list[str]:
    """Split an answer into streamed pieces of ``size`` words."""
    words = text.split(" ")
    return [" ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
            for i in range(0, len(words), size)]  # fmt: skip


# -- Anthropic -------------------------------------------------------------------


def anthropic_usage(body: dict[str, Any], input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Usage with cache fields: a request with cache_control reads half its input from cache."""
    cached = input_tokens // 2 if _has_cache_control(body) else 0
    return {
        "input_tokens": input_tokens - cached,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


Usage = dict[str, Any] | None  # fields that replace the computed usage's (tests)


def anthropic_message(body: dict[str, Any], usage: Usage = None) -> dict[str, Any]:
    """A complete (non-streamed) Messages API response."""
    text, input_tokens = answer_for(body)
    return {
        "id": f"msg_stub_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", MODELS["anthropic"][0]),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**anthropic_usage(body, input_tokens, count_tokens(text)), **(usage or {})},
    }


def anthropic_stream(body: dict[str, Any], usage_fields: Usage = None) -> Iterator[bytes]:
    """The server-sent events of a streamed Messages API response.

    As the API does, ``message_start`` carries the input side of the usage and
    ``message_delta`` the final output count (and its details).
    """
    message = anthropic_message(body, usage_fields)
    text = message["content"][0]["text"]
    usage = dict(message["usage"])
    details = usage.pop("output_tokens_details", None)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield _sse("ping", {"type": "ping"})
    for piece in chunks(text):
        yield _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "output_tokens": usage["output_tokens"],
                **({"output_tokens_details": details} if details else {}),
            },
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def anthropic_models() -> dict[str, Any]:
    """GET /v1/models in Anthropic's shape."""
    data = [
        {"type": "model", "id": name, "display_name": name, "created_at": "2025-10-01T00:00:00Z"}
        for name in MODELS["anthropic"]
    ]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """An Anthropic error body."""
    kinds = {
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


# -- OpenAI ----------------------------------------------------------------------


def openai_completion(body: dict[str, Any], usage: Usage = None) -> dict[str, Any]:
    """A complete (non-streamed) Chat Completions response."""
    text, input_tokens = answer_for(body)
    output_tokens = count_tokens(text)
    return {
        "id": f"chatcmpl-stub{uuid.uuid4().hex[:20]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODELS["openai"][0]),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {**_openai_usage(input_tokens, output_tokens), **(usage or {})},
    }


def _openai_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def openai_stream(body: dict[str, Any], usage: Usage = None) -> Iterator[bytes]:
    """The server-sent events of a streamed Chat Completions response."""
    completion = openai_completion(body, usage)
    text = completion["choices"][0]["message"]["content"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield _data({**base, "choices": [first]})
    for piece in chunks(text):
        delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        yield _data({**base, "choices": [delta]})
    yield _data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        yield _data({**base, "choices": [], "usage": completion["usage"]})
    yield b"data: [DONE]\n\n"


def openai_models() -> dict[str, Any]:
    """GET /v1/models in OpenAI's shape."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 1_759_000_000, "owned_by": "stub"}
            for name in MODELS["openai"]
        ],
    }


def openai_error(status: int, message: str) -> dict[str, Any]:
    """An OpenAI error body."""
    kinds = {
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
        500: "server_error",
    }
    code = "model_not_found" if status == 404 else None
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "code": code}}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _data(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()
