"""``assistant dev ...``: tools for developing and testing the assistant."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Developer tools: a stub LLM server for tests and demos.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("stub-llm")
def stub_llm(
    port: int = typer.Option(
        8089, "--port", "-p", min=0, max=65535, help="Port (0: any free one)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    latency: float = typer.Option(
        0.0, "--latency", min=0, help="Seconds to wait before each answer."
    ),
    error_rate: float = typer.Option(
        0.0, "--error-rate", min=0, max=1, help="Share of requests answered with a 500 (0..1)."
    ),
    stream_delay: float = typer.Option(
        0.0, "--stream-delay", min=0, help="Seconds between streamed chunks."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Accept only this key (default: any non-empty key)."
    ),
    any_model: bool = typer.Option(
        False,
        "--any-model",
        help="Answer for any model name (default: like the real APIs, 404 for a model not "
        "in its list: claude-sonnet-4-5, claude-haiku-4-5, gpt-4.1, ...).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Serve a stub of the Anthropic and OpenAI APIs until SIGTERM or Ctrl-C.

    The real SDKs work against it: set LLM_BASE_URL to the printed URL (the root or
    /v1) and any LLM_API_KEY. Faults can be queued at run time:
    curl -d '{"queue": ["429:2", "500", "drop"]}' http://127.0.0.1:8089/_stub/faults

    Example: assistant dev stub-llm --port 8089 --latency 0.05 --error-rate 0.1
    """
    from assistant.stubllm import StubLLMServer

    server = StubLLMServer(
        host,
        port,
        latency=latency,
        error_rate=error_rate,
        stream_delay=stream_delay,
        required_key=api_key,
        any_model=any_model,
        verbose=verbose,
    )
    typer.echo(f"Stub LLM server on {server.url} (set LLM_BASE_URL={server.url})", err=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
