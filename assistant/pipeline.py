"""The message pipeline: context -> classify -> generate -> persist, fully instrumented.

Every stage is timed (``assistant_stage_*``), logged with the conversation and
message ids bound, and recorded in the run's trace. A failing stage marks the run
failed with the stage and the error type; the database is written only by
``persist``, in one transaction, so a failure leaves nothing half-written. The
pipeline execution summary is logged at the end either way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from assistant.classifiers import Classification, classify
from assistant.errors import SecretAsName
from assistant.providers.base import ChatMessage, Generation, GenerationRequest, TextCallback
from assistant.storage import ConversationRepository, StoredMessage, new_id
from assistant_monitoring.aio import interruption, is_interruption
from assistant_monitoring.gitinfo import current_git_place
from assistant_monitoring.logs import log_context, log_pipeline_summary
from assistant_monitoring.redact import holds_secret, redact_configured, redact_text
from assistant_monitoring.runs import RunRecord, StageRecord, session_id
from assistant_monitoring.statuses import RunStatus
from assistant_monitoring.tracing import AttributeValue, span

if TYPE_CHECKING:
    from assistant.providers.client import LlmClient
    from assistant_monitoring.metrics import Instrumentation, LlmCall
    from assistant_monitoring.settings import Settings

T = TypeVar("T")


@dataclass
class Answer:
    """The outcome of one successful run."""

    run: RunRecord
    text: str
    conversation_id: str
    message_id: str
    classifications: list[Classification] = field(default_factory=list)


class Pipeline:
    """Runs one user message through the stages."""

    def __init__(
        self,
        *,
        settings: Settings,
        instrumentation: Instrumentation,
        repository: ConversationRepository,
        llm: LlmClient,
        record_run: Callable[[RunRecord], None],
    ) -> None:
        self.settings = settings
        self.instrumentation = instrumentation
        self.repository = repository
        self.llm = llm
        # Stores a run's trace; never raises (a run that cannot be recorded is logged).
        self.record_run = record_run

    async def handle(
        self,
        text: str,
        *,
        conversation_id: str | None = None,
        model: str | None = None,
        stream: bool = True,
        on_text: TextCallback | None = None,
    ) -> Answer:
        """Answer ``text``; raises the user-facing error of the stage that failed."""
        settings = self.settings
        _refuse_secrets(model, conversation_id)
        # The SDK import, before the run starts, when the breaker lets the call through:
        # a chat whose breaker was open when it started, and lets calls through now,
        # would otherwise time it as this run's generate stage.
        self.llm.prepare()
        model = model or settings.llm.model
        # The configured secrets (LLM_API_KEY, MONITOR_TOKEN, a URL's password) never
        # belong in a conversation: masked before the model sees them (so it cannot
        # repeat them) and before they are stored. The rest is the user's text.
        text = redact_configured(text)
        is_new = conversation_id is None
        conversation = conversation_id or new_id("c")
        message_id = new_id("m")
        place = current_git_place()
        run = RunRecord(
            id=new_id("run"),
            started_at=time.time(),
            conversation_id=conversation,
            message_id=message_id,
            provider=settings.llm.provider,
            model=model,
            session_id=session_id(),
            repo=place.repo if place else None,
            branch=place.branch if place else None,
        )
        if settings.logging.log_content:
            run.prompt = text
        root_attributes: dict[str, AttributeValue] = {
            "assistant.run.id": run.id,
            "gen_ai.conversation.id": conversation,
            "assistant.message.id": message_id,
        }
        with (
            span(self.instrumentation.tracer, "assistant run", attributes=root_attributes) as root,
            log_context(conversation_id=conversation, message_id=message_id, run_id=run.id),
        ):
            run.trace_id, run.span_id = root.context.trace_id, root.context.span_id
            # Written now as `running`, so a process killed outright leaves a trace
            # (shown as abandoned later) instead of no run at all.
            self.record_run(run)
            clock = time.perf_counter()
            calls: list[LlmCall] = []  # the LLM call's record, there even when it failed
            try:
                async with self.instrumentation.pipeline_run():
                    history = await self._stage(
                        run, clock, "context", lambda: self._context(conversation, is_new)
                    )
                    labels = await self._stage(run, clock, "classify", lambda: self._classify(text))
                    run.classifiers = {c.classifier: c.as_record() for c in labels}
                    generation, call = await self._stage(
                        run,
                        clock,
                        "generate",
                        lambda: self._generate(history, text, model, stream, on_text, calls),
                    )
                    self._note_generation(run, generation, call)
                    await self._stage(
                        run,
                        clock,
                        "persist",
                        lambda: self._persist(conversation, is_new, message_id, text, generation),
                    )
            except BaseException as error:
                if calls and run.failed_stage == "generate":
                    run.retries = calls[-1].retries
                if is_interruption(error):
                    # Stopped from outside (SIGTERM, Ctrl-C): not a failure of anything.
                    run.status = RunStatus.INTERRUPTED
                    run.error_type = "Interrupted"
                    run.error_message = f"interrupted by {interruption()}"
                else:
                    run.status = RunStatus.FAILURE
                    run.error_type = type(error).__name__
                    run.error_message = str(error)
                raise
            else:
                run.status = RunStatus.SUCCESS
                if settings.logging.log_content:
                    run.response = generation.text
            finally:
                self._finish(run, clock)
                root.set_attributes(_run_attributes(run))
        # As stored: a configured secret the model produced anyway is not printed whole
        # (--json, --no-stream; a streamed answer went out piece by piece already).
        answer_text = redact_configured(generation.text)
        return Answer(run, answer_text, conversation, message_id, labels)

    # -- stages -------------------------------------------------------------------

    async def _stage(
        self, run: RunRecord, clock: float, name: str, work: Callable[[], Awaitable[T]]
    ) -> T:
        started = time.perf_counter()
        try:
            with span(self.instrumentation.tracer, f"stage {name}") as stage_span:
                stage_span.set_attribute("assistant.stage", name)
                async with self.instrumentation.stage(name):
                    result = await work()
        except BaseException as error:
            interrupted = is_interruption(error)
            run.stages.append(
                StageRecord(
                    name,
                    RunStatus.INTERRUPTED if interrupted else RunStatus.FAILURE,
                    _ms(started - clock),
                    _ms(time.perf_counter() - started),
                    "Interrupted" if interrupted else type(error).__name__,
                )
            )
            run.failed_stage = name
            raise
        run.stages.append(
            StageRecord(
                name, RunStatus.SUCCESS, _ms(started - clock), _ms(time.perf_counter() - started)
            )
        )
        return result

    async def _context(self, conversation: str, is_new: bool) -> list[StoredMessage]:
        if is_new:
            return []
        await self.repository.get(conversation)  # ConversationNotFound for a bad id
        limit = self.settings.llm.history_messages
        return await self.repository.recent_messages(conversation, limit) if limit else []

    async def _classify(self, text: str) -> list[Classification]:
        features = self.settings.features
        return await classify(
            text,
            parallel=features.parallel_classification,
            timeout=features.classifier_timeout_ms / 1000,
            instrumentation=self.instrumentation,
        )

    async def _generate(
        self,
        history: list[StoredMessage],
        text: str,
        model: str,
        stream: bool,
        on_text: TextCallback | None,
        calls: list[LlmCall],
    ) -> tuple[Generation, LlmCall]:
        settings = self.settings
        # History stored by an older version may still hold a configured secret.
        messages = [ChatMessage(m.role, redact_configured(m.content)) for m in history]
        messages.append(ChatMessage("user", text))
        system = settings.llm.system_prompt
        request = GenerationRequest(
            model=model,
            messages=messages,
            max_tokens=settings.llm.max_tokens,
            temperature=settings.llm.temperature,
            system=redact_configured(system) if system else system,
            stream=stream,
        )
        return await self.llm.generate(request, on_text=on_text, on_call=calls.append)

    async def _persist(
        self, conversation: str, is_new: bool, message_id: str, text: str, generation: Generation
    ) -> None:
        now = time.time()
        usage = generation.usage
        await self.repository.save_exchange(
            conversation_id=conversation,
            is_new=is_new,
            model=generation.model,
            user=StoredMessage(new_id("m"), conversation, "user", text, now),
            answer=StoredMessage(
                message_id,
                conversation,
                "assistant",
                redact_configured(generation.text),
                now,
                generation.model,
                usage.input,
                usage.output,
            ),
            cache_read_tokens=usage.cache_read,
            cache_write_tokens=usage.cache_write + usage.cache_write_1h,
        )

    # -- bookkeeping ----------------------------------------------------------------

    @staticmethod
    def _note_generation(run: RunRecord, generation: Generation, call: LlmCall) -> None:
        usage = generation.usage
        run.model = generation.model
        run.input_tokens, run.output_tokens = usage.input, usage.output
        run.cache_read_tokens, run.cache_write_tokens = usage.cache_read, usage.cache_write
        run.cache_write_1h_tokens, run.reasoning_tokens = usage.cache_write_1h, usage.reasoning
        run.cost_usd, run.price_version = call.cost, call.price_version
        run.retries = call.retries
        run.ttft_ms = _ms(call.ttft) if call.ttft is not None else None

    def _finish(self, run: RunRecord, clock: float) -> None:
        run.finished_at = time.time()
        run.duration_ms = _ms(time.perf_counter() - clock)
        log_pipeline_summary(
            conversation_id=run.conversation_id or "",
            message_id=run.message_id or "",
            status=run.status,
            total_seconds=run.duration_ms / 1000,
            stage_seconds={stage.name: stage.duration_ms / 1000 for stage in run.stages},
            error_type=run.error_type,
            failed_stage=run.failed_stage,
        )
        self.record_run(run)


def _refuse_secrets(model: str | None, conversation_id: str | None) -> None:
    """SecretAsName when a key was pasted as the model or the conversation id."""
    if model and holds_secret(model):
        raise SecretAsName(
            "--model looks like an API key, not a model name: pass a model name such as "
            "claude-sonnet-4-5 (the key goes in LLM_API_KEY); nothing was sent"
        )
    if conversation_id and holds_secret(conversation_id):
        raise SecretAsName(
            "--conversation looks like an API key, not a conversation id (c_...): list "
            "them with `assistant monitor runs`; nothing was sent"
        )


def _run_attributes(run: RunRecord) -> dict[str, AttributeValue]:
    """What the root span says of the run once it ended (never prompt text)."""
    attributes: dict[str, AttributeValue] = {
        "assistant.status": run.status,
        "gen_ai.provider.name": run.provider or "",
        "gen_ai.request.model": redact_text(run.model or "")[:200],
        "assistant.retries": run.retries,
    }
    if run.failed_stage:
        attributes["assistant.failed_stage"] = run.failed_stage
    for name, result in run.classifiers.items():
        attributes[f"assistant.classifier.{name}.label"] = str(result.get("label"))
        confidence = result.get("confidence")
        if isinstance(confidence, int | float):
            attributes[f"assistant.classifier.{name}.confidence"] = float(confidence)
    if run.cost_usd is not None:
        attributes["assistant.cost_usd"] = run.cost_usd
    return attributes


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
