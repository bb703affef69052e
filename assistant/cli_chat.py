"""``assistant ask`` and ``assistant chat``: talk to the model through the pipeline."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from assistant_monitoring.cli.state import current_state

if TYPE_CHECKING:
    import asyncio

    from assistant.app import AssistantApp
    from assistant.pipeline import Answer


def _write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _footer(answer: Answer) -> str:
    run = answer.run
    cost = "unpriced" if run.cost_usd is None else f"${run.cost_usd:.4f}"
    retries = f" · {run.retries} retries" if run.retries else ""
    return (
        f"conversation {answer.conversation_id} · {run.duration_ms:.0f} ms · "
        f"{run.input_tokens} in / {run.output_tokens} out tokens · {cost}{retries}"
    )


def ask(
    question: str = typer.Argument(..., help="What to ask."),
    conversation: str | None = typer.Option(
        None, "--conversation", "-c", help="Continue this conversation (its id)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: LLM_MODEL)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the answer when complete."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (no streaming)."),
) -> None:
    """Ask one question; the answer streams to stdout, the run's summary to stderr.

    Every run is recorded (see `assistant monitor runs`), with metrics and logs.

    Examples:

      assistant ask "What is a circuit breaker?"

      assistant ask --conversation c_3f9a1b2c4d5e "And a bulkhead?"
    """
    from assistant.app import AssistantApp
    from assistant_monitoring import aio

    settings = current_state().start()
    stream = not (no_stream or as_json)
    streamed: list[str] = []

    def show(piece: str) -> None:
        streamed.append(piece)
        _write(piece)

    async def run() -> Answer:
        app = await AssistantApp.open(settings)
        try:
            # (The pipeline builds the LLM client before the run starts: see handle.)
            return await app.pipeline.handle(
                question,
                conversation_id=conversation,
                model=model,
                stream=stream,
                on_text=show if stream else None,
            )
        finally:
            await app.close()

    try:
        answer = aio.run(run())
    finally:
        if streamed:
            _write("\n")  # end the streamed line, answered or not
    if as_json:
        run_record = answer.run
        typer.echo(
            json.dumps(
                {
                    "answer": answer.text,
                    "conversation_id": answer.conversation_id,
                    "message_id": answer.message_id,
                    "run_id": run_record.id,
                    "model": run_record.model,
                    "duration_ms": run_record.duration_ms,
                    "tokens": {
                        "input": run_record.input_tokens,
                        "output": run_record.output_tokens,
                        "cache_read": run_record.cache_read_tokens,
                        "cache_write": run_record.cache_write_tokens,
                        "cache_write_1h": run_record.cache_write_1h_tokens,
                        "reasoning": run_record.reasoning_tokens,
                    },
                    "cost_usd": run_record.cost_usd,
                    "retries": run_record.retries,
                    "classifiers": run_record.classifiers,
                },
                indent=2,
            )
        )
        return
    if not stream:
        typer.echo(answer.text)
    typer.echo(_footer(answer), err=True)


@dataclass
class SessionStats:
    """What `/stats` shows: this session's messages, tokens, cost and latency."""

    messages: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: bool = False
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, answer: Answer) -> None:
        run = answer.run
        self.messages += 1
        self.input_tokens += run.input_tokens
        self.output_tokens += run.output_tokens
        if run.cost_usd is None:
            self.unpriced = True
        else:
            self.cost_usd += run.cost_usd
        self.latencies_ms.append(run.duration_ms)

    def render(self) -> str:
        ordered = sorted(self.latencies_ms)
        p50 = ordered[len(ordered) // 2] if ordered else 0.0
        worst = ordered[-1] if ordered else 0.0
        cost = f"${self.cost_usd:.4f}" + (" (some models unpriced)" if self.unpriced else "")
        return (
            f"{self.messages} answered, {self.failures} failed · "
            f"{self.input_tokens} in / {self.output_tokens} out tokens · {cost} · "
            f"latency p50 {p50:.0f} ms, max {worst:.0f} ms"
        )


_CHAT_HELP = "/stats this session's usage · /new start a new conversation · /exit leave"


def _slash_command(text: str, stats: SessionStats) -> str:
    """Handle a /command; returns 'exit', 'new' or '' (nothing more to do)."""
    if text in ("/exit", "/quit"):
        return "exit"
    if text == "/stats":
        typer.echo(stats.render(), err=True)
    elif text == "/new":
        typer.echo("new conversation", err=True)
        return "new"
    else:
        typer.echo(f"unknown command {text}: {_CHAT_HELP}", err=True)
    return ""


def chat(
    conversation: str | None = typer.Option(
        None, "--conversation", "-c", help="Continue this conversation (its id)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: LLM_MODEL)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print answers when complete."),
) -> None:
    """Talk interactively. /stats shows usage, /exit or Ctrl-D leaves, Ctrl-C quits.

    Reads one message a line, so it can also be fed from a pipe:
    printf 'hello\\nwhat is WAL?\\n' | assistant chat

    Exit codes: 0 every message answered; 1 some message failed; from a pipe, an
    error every next message would meet too (no API key, key rejected, unknown
    model or conversation) stops at once with ask's exit code (2, or 1).
    """
    import asyncio

    from assistant.app import AssistantApp
    from assistant_monitoring import aio

    settings = current_state().start()
    interactive = sys.stdin.isatty()
    with asyncio.Runner() as runner:
        app: AssistantApp = aio.run(AssistantApp.open(settings), runner=runner)
        # A session can last hours: its metrics land every MONITOR_FLUSH_INTERVAL.
        app.runtime.start_periodic_flush(settings.monitoring.flush_interval_seconds)
        session = _ChatSession(app, runner, conversation, model, no_stream)
        try:
            # The SDK import now, while the user types the first line (each message
            # prepares again, which is free once the client is built).
            app.llm.prepare()
            if interactive:
                typer.echo(f"assistant chat · {settings.llm.model} · {_CHAT_HELP}", err=True)
            session.loop(interactive)
        finally:
            aio.run(app.close(), runner=runner)
    typer.echo(session.stats.render(), err=True)
    if session.ended_by is not None:
        raise session.ended_by  # one line and ask's exit code, from the CLI's error handler
    if session.stats.failures:
        raise typer.Exit(1)


class _ChatSession:
    """One chat: reads lines, answers them, keeps the conversation and the stats."""

    def __init__(
        self,
        app: AssistantApp,
        runner: asyncio.Runner,
        conversation: str | None,
        model: str | None,
        no_stream: bool,
    ) -> None:
        self.app = app
        self.runner = runner
        self.conversation = conversation
        self.model = model
        self.no_stream = no_stream
        self.stats = SessionStats()
        self.ended_by: Exception | None = None  # the error that stopped a piped session

    def loop(self, interactive: bool) -> None:
        """Read and answer lines until EOF, /exit, or an error every line would meet."""
        while True:
            try:
                line = input("you> " if interactive else "")
            except EOFError:
                return
            text = line.strip()
            if text.startswith("/"):
                action = _slash_command(text, self.stats)
                if action == "exit":
                    return
                if action == "new":
                    self.conversation = None
                continue
            if text and not self.answer(text, interactive):
                return

    def answer(self, text: str, interactive: bool) -> bool:
        """Answer one message; False when the session must stop."""
        from assistant_monitoring import aio
        from assistant_monitoring.errors import MonitoringError

        streamed: list[str] = []

        def show(piece: str) -> None:
            streamed.append(piece)
            _write(piece)

        try:
            answer = aio.run(
                self.app.pipeline.handle(
                    text,
                    conversation_id=self.conversation,
                    model=self.model,
                    stream=not self.no_stream,
                    on_text=None if self.no_stream else show,
                ),
                runner=self.runner,
            )
        except MonitoringError as error:
            self.stats.failures += 1
            if streamed:
                _write("\n")
            if not interactive and getattr(error, "ends_session", False):
                # Every next line would fail the same way: stop, as ask would.
                self.ended_by = error
                return False
            typer.echo(f"error: {error}", err=True)  # one failed message; the session goes on
            return True
        self.conversation = answer.conversation_id
        self.stats.add(answer)
        if self.no_stream:
            typer.echo(answer.text)
        else:
            _write("\n")
        return True
