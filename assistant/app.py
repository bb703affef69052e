"""The composition root: everything the assistant needs, built from one Settings.

``AssistantApp.open(settings)`` wires the metrics runtime, circuit breakers, the
database (instrumented, behind the ``database`` breaker), the run store and the
pipeline. The LLM client builds its provider (and imports its SDK, 0.5-1.4 s) on
the first call that needs it, so ``assistant db status`` never pays for it, and
neither does an ``ask`` that the provider's open breaker refuses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from assistant.pipeline import Pipeline
from assistant.providers import Provider
from assistant.providers.client import LlmClient
from assistant.storage import ConversationRepository, Database
from assistant_monitoring.breaker import BreakerConfig, BreakerRegistry
from assistant_monitoring.metrics import Instrumentation, MetricsRuntime, start_metrics
from assistant_monitoring.metrics.retention import Retention
from assistant_monitoring.otel import start_otel
from assistant_monitoring.runs import RunRecord, RunStore
from assistant_monitoring.settings import Settings
from assistant_monitoring.statuses import RunStatus


@dataclass
class AssistantApp:
    """The assistant's parts, wired together."""

    settings: Settings
    runtime: MetricsRuntime
    breakers: BreakerRegistry
    database: Database
    runs: RunStore | None
    llm: LlmClient
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(
            settings=self.settings,
            instrumentation=self.instrumentation,
            repository=ConversationRepository(self.database),
            llm=self.llm,
            record_run=self.record_run,
        )

    @property
    def instrumentation(self) -> Instrumentation:
        """Where every metric goes."""
        return self.runtime.instrumentation

    @classmethod
    async def open(cls, settings: Settings, *, provider: Provider | None = None) -> AssistantApp:
        """Build the app and migrate the database (idempotent, cheap when up to date)."""
        runtime = start_metrics(
            settings.monitoring_db_path if settings.features.metrics else None,
            retention=Retention.from_settings(settings),
            prices_file=settings.monitoring.prices_file,
        )
        start_otel(  # only with OTEL_* variables set: imports nothing otherwise
            runtime,
            environment=settings.profile,
            log_level=settings.logging.level,
            exit_timeout_ms=settings.monitoring.otel_exit_timeout_ms,
        )
        store_path = _usable_store(settings, runtime)
        config = BreakerConfig(
            failure_threshold=settings.monitoring.breaker_failure_threshold,
            reset_timeout=settings.monitoring.breaker_reset_seconds,
        )
        breakers = BreakerRegistry(
            store_path, config=config, instrumentation=runtime.instrumentation
        )
        database = Database(
            settings.database_path,
            max_connections=settings.database.max_connections,
            busy_timeout_ms=settings.database.busy_timeout_ms,
            instrumentation=runtime.instrumentation,
            breaker=breakers.get("database"),
        )
        try:
            await database.migrate()
        except BaseException:
            await database.close()  # its connections' threads would keep the process alive
            raise
        await _apply_conversation_retention(settings, database)
        runs = RunStore(store_path) if store_path is not None else None
        llm = LlmClient(settings, breakers, runtime.instrumentation, provider)
        return cls(settings, runtime, breakers, database, runs, llm)

    def record_run(self, run: RunRecord) -> None:
        """Store a run's trace; a failure is logged and counted, never raised."""
        if self.runs is None:
            return
        try:
            if not self.runs.record(run) and run.status != RunStatus.RUNNING:
                from loguru import logger

                logger.warning(
                    f"the metrics store is locked by another process: run {run.id} is kept in "
                    f"{self.runs.pending_dir} and recorded by the next command"
                )
        except Exception as error:
            from loguru import logger

            self.instrumentation.error(error, context="runs:record")
            logger.warning(f"could not record pipeline run {run.id}: {error}")

    async def close(self) -> None:
        """Close the provider client and the databases (metrics flush at exit)."""
        await self.llm.close()
        await self.database.close()
        if self.runs is not None:
            self.runs.close()


def _usable_store(settings: Settings, runtime: MetricsRuntime) -> Path | None:
    """monitoring.db's path, or None (with one warning) when it cannot be written.

    The assistant answers even when its monitoring cannot record: metrics, run
    records and shared breaker state are then off for this process, said once.
    A store locked by another process past DATABASE_BUSY_TIMEOUT is different: it
    will be usable again in a moment, and answering now would spend tokens no
    report ever counts, so the command stops with the one line that names it.
    """
    if not settings.features.metrics:
        return None
    from assistant_monitoring.metrics.store import MetricsStore, StoreError

    probe = MetricsStore(settings.monitoring_db_path)
    try:
        # The write lock, taken and given back: a writer holding it would otherwise
        # be met only when the run is recorded, after the tokens were spent.
        with probe.transaction():
            pass
    except StoreError as error:
        if error.kind == "locked":
            raise
        from loguru import logger

        logger.warning(f"not recording metrics, runs or breaker state: {error}")
        runtime.store = None  # its flush would fail, and say so, again
        return None
    finally:
        probe.close()
    return settings.monitoring_db_path


async def _apply_conversation_retention(settings: Settings, database: Database) -> None:
    """DATABASE_RETENTION_DAYS: idle conversations go, a bounded batch per command."""
    days = settings.database.retention_days
    if days is None:
        return
    from loguru import logger

    from assistant.storage import ConversationRepository

    try:
        deleted = await ConversationRepository(database).prune(time.time() - days * 86400)
    except Exception as error:  # retention never stops an answer
        logger.warning(f"conversation retention failed: {error}")
        return
    if deleted:
        logger.info(f"retention: deleted {deleted} conversations idle for over {days} days")
