"""Pipeline runs: the local trace log of every message (like simonw/llm's logs table).

One row per run in ``monitoring.db``: ids, status, total and per-stage durations,
classifier labels, provider, model, tokens, cost, retries, and the error when it
failed. Prompt and response text are stored only when ``LOG_CONTENT=true``.
Recording never raises into the pipeline.

A run's row is written when it starts (``running``) and again when it ends, in
exactly one of ``success``, ``failure`` or ``interrupted`` (SIGTERM, Ctrl-C). A
process killed outright (SIGKILL, power loss) cannot write the end: its run stays
``running`` in the table, and is shown as ``abandoned`` once it is older than the
longest a run can take (:func:`longest_run_seconds`), never as still running.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant_monitoring.errors import UsageError, shown
from assistant_monitoring.metrics import pending
from assistant_monitoring.metrics.store import MetricsStore, StoreError
from assistant_monitoring.redact import holds_secret, redact_text
from assistant_monitoring.rollup import account
from assistant_monitoring.sqlitefile import present
from assistant_monitoring.statuses import RunStatus

_COLUMNS = (
    "id, started_at, finished_at, conversation_id, message_id, status, duration_ms, stages, "
    "classifiers, provider, model, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, cost_usd, retries, ttft_ms, failed_stage, error_type, error_message, "
    "prompt, response, cache_write_1h_tokens, reasoning_tokens, price_version, session_id, "
    "repo, branch, trace_id, span_id"
)
_NAMES = [name.strip() for name in _COLUMNS.split(",")]
_TRACE_ID = re.compile("[0-9a-f]{32}")
_SPAN_ID = re.compile("[0-9a-f]{16}")
_INSERT = (
    f"INSERT OR REPLACE INTO pipeline_runs ({_COLUMNS}) VALUES ({','.join('?' * len(_NAMES))})"
)
# What a run row can say, and what `monitor runs --status` can ask for.
STATUSES = tuple(RunStatus)
_ABANDON_SLACK_SECONDS = 60.0
_SLOWEST_STREAM_TOKENS_PER_SECOND = 10.0
_RUN_ID = re.compile("[A-Za-z0-9_-]{1,64}")  # what may name a pending file
_RUN_FILE = re.compile("run_[A-Za-z0-9_-]{1,60}[.]json")
# Text columns that come from outside (argv, the environment, the prompt, the model):
# each goes through the shared redaction rule (the spans' and the logs'), on the way
# in and again on the way out (rows written by an older version).
_REDACTED = (
    "conversation_id",
    "provider",
    "model",
    "error_message",
    "prompt",
    "response",
    "session_id",
    "repo",
    "branch",
)
# Pending runs merged per record: a backlog goes in slices, never one long lock.
_MERGE_AT_MOST = 200


def parse_status(text: str | None, *, option: str) -> str | None:
    """A ``--status`` (or ``?status=``) value: one of STATUSES, ``failed`` for failure.

    Raises UsageError naming ``option`` for anything else.
    """
    if text is None:
        return None
    status = "failure" if text == "failed" else text
    if status not in STATUSES:
        raise UsageError(
            f"{option}: expected one of {', '.join(STATUSES)} (or failed) (got '{shown(text)}')"
        )
    return status


def longest_run_seconds(settings: Any) -> float:
    """The longest a pipeline run can last with ``settings``; a run older is abandoned.

    Every attempt may take LLM_TIMEOUT, retries may add LLM_MAX_RETRY_SECONDS, an
    answer of LLM_MAX_TOKENS may stream at a slow 10 tokens a second, and each of the
    database steps may wait DATABASE_BUSY_TIMEOUT; plus a minute of slack.
    """
    llm = settings.llm
    return float(
        llm.timeout_seconds * (llm.max_retries + 1)
        + llm.max_retry_seconds
        + llm.max_tokens / _SLOWEST_STREAM_TOKENS_PER_SECOND
        + 4 * settings.database.busy_timeout_ms / 1000
        + settings.features.classifier_timeout_ms / 1000
        + _ABANDON_SLACK_SECONDS
    )


@dataclass
class StageRecord:
    """One stage of a run."""

    name: str
    status: str
    started_ms: float  # since the run started
    duration_ms: float
    error_type: str | None = None


@dataclass
class RunRecord:
    """One pipeline run."""

    id: str
    started_at: float
    finished_at: float = 0.0
    conversation_id: str | None = None
    message_id: str | None = None
    status: str = RunStatus.RUNNING
    duration_ms: float = 0.0
    stages: list[StageRecord] = field(default_factory=list)
    classifiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None
    retries: int = 0
    ttft_ms: float | None = None
    failed_stage: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    prompt: str | None = None
    response: str | None = None
    cache_write_1h_tokens: int = 0  # cache_write_tokens are the 5-minute tier
    reasoning_tokens: int = 0  # of output_tokens
    price_version: str | None = None  # PriceTable.version of cost_usd
    session_id: str | None = None  # one per assistant process (a chat, an ask)
    repo: str | None = None  # git repository (top-level folder name) it started in
    branch: str | None = None
    trace_id: str | None = None  # W3C ids of the run's root span (see tracing.py)
    span_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The run as a JSON-ready dict (``monitor runs --json``)."""
        return asdict(self)


class RunStore:
    """Write and query pipeline runs."""

    def __init__(
        self,
        path: Path,
        *,
        read_only_ok: bool = False,
        abandon_after: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        # Runs still `running` after this many seconds are shown as abandoned.
        self.abandon_after = abandon_after
        self.clock = clock
        self._store = MetricsStore(path, read_only_ok=read_only_ok)

    @classmethod
    def reading(cls, settings: Any) -> RunStore | None:
        """A store to show runs from (read-only if need be), or None when none exists."""
        path = settings.monitoring_db_path
        if not present(path):
            return None
        return cls(path, read_only_ok=True, abandon_after=longest_run_seconds(settings))

    def record(self, run: RunRecord) -> bool:
        """Store a run as it is now: when it starts, and when it ends (one transaction)."""
        # Built by hand, not with dataclasses.asdict: this runs once per message and
        # asdict's deep copy was most of its cost.
        stages = [
            {
                "name": s.name,
                "status": s.status,
                "started_ms": s.started_ms,
                "duration_ms": s.duration_ms,
                "error_type": s.error_type,
            }
            for s in run.stages
        ]
        row = [getattr(run, name) for name in _NAMES]
        for name in _REDACTED:
            index = _NAMES.index(name)
            if isinstance(row[index], str):
                row[index] = redact_text(row[index])
        message = row[_NAMES.index("error_message")]
        row[_NAMES.index("stages")] = json.dumps(stages)
        row[_NAMES.index("classifiers")] = json.dumps(run.classifiers)
        row[_NAMES.index("error_message")] = message[:1000] if message else None
        waiting = self._read_pending(current=run.id)  # outside the write lock
        try:
            with self._store.transaction() as conn:
                # The usage rollup changes in the same transaction: never out of step.
                account(conn, run.id, lambda: conn.execute(_INSERT, row))
                for pending_row in waiting.rows:
                    _merge_pending_row(conn, pending_row)
        except StoreError as error:
            if error.kind != "locked" or not _RUN_ID.fullmatch(run.id):
                raise
            self._spool(run.id, row)
            return False
        for path in waiting.done:  # only once their rows are committed
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return True

    @property
    def pending_dir(self) -> Path:
        """Where runs wait that could not be written while the store was locked."""
        return self._store.pending_dir

    def _spool(self, run_id: str, row: list[Any]) -> None:
        """Keep ``row`` for the next writer, whole or not at all (written aside, renamed)."""
        try:
            pending.write_whole(
                self.pending_dir / f"{run_id}.json", json.dumps(row, allow_nan=False)
            )
        except (OSError, ValueError) as error:
            raise StoreError(
                f"the metrics store is locked and run {run_id} could not be kept in "
                f"{self.pending_dir} either ({error}): it is lost"
            ) from None

    def _read_pending(self, *, current: str) -> _Pending:
        """The runs waiting in :attr:`pending_dir`, checked, oldest first.

        A file that is not a run this module wrote whole is renamed ``NAME.bad``, once,
        with a warning: it is never read again, never blocks the others, and is left
        for a person (``assistant db check`` lists it).
        """
        waiting = _Pending()
        for path in pending.candidates(self.pending_dir, _RUN_FILE):
            run_id = path.name.removesuffix(".json")
            if run_id == current:  # this record is newer than what was kept
                waiting.done.append(path)
                continue
            row, problem = _pending_row(path, run_id)
            if row is None:
                pending.set_aside(path, problem)
                continue
            waiting.rows.append(row)
            waiting.done.append(path)
            if len(waiting.rows) >= _MERGE_AT_MOST:
                break
        return waiting

    def query(
        self,
        *,
        status: str | None = None,
        limit: int = 20,
        since: float | None = None,
        conversation: str | None = None,
    ) -> list[RunRecord]:
        """The newest runs matching the filters, newest first."""
        where: list[str] = []
        params: list[object] = []
        cutoff = self._cutoff()
        if status in ("running", "abandoned") and cutoff is not None:
            where.append(
                "status = 'running' AND started_at " + (">= ?" if status == "running" else "< ?")
            )
            params.append(cutoff)
        elif status == "abandoned":
            where.append("0")  # without a bound, no run can be called abandoned
        elif status is not None:
            where.append("status = ?")
            params.append(status)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if conversation is not None:
            where.append("conversation_id = ?")
            params.append(conversation)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._store.connect().execute(
            f"SELECT {_COLUMNS} FROM pipeline_runs {clause} ORDER BY started_at DESC LIMIT ?",
            [*params, limit],
        )
        return [self._shown(_run(row)) for row in rows]

    def get(self, run_id: str) -> RunRecord | None:
        """A run by id, by a unique prefix of it, or by its trace id."""
        if _TRACE_ID.fullmatch(run_id):  # what a tracing backend shows
            where, key = "trace_id = ?", run_id  # several under one TRACEPARENT
        elif _SPAN_ID.fullmatch(run_id):  # the run's root span: always one run
            where, key = "span_id = ?", run_id
        else:
            where, key = "id LIKE ?", run_id.replace("%", "") + "%"
        rows = (
            self._store.connect()
            .execute(
                f"SELECT {_COLUMNS} FROM pipeline_runs WHERE {where} "
                "ORDER BY started_at DESC LIMIT 2",
                (key,),
            )
            .fetchall()
        )
        return self._shown(_run(rows[0])) if len(rows) == 1 else None

    def _cutoff(self) -> float | None:
        return None if self.abandon_after is None else self.clock() - self.abandon_after

    def _shown(self, run: RunRecord) -> RunRecord:
        """A run as it should be shown: `running` past the longest run is abandoned, and
        its text redacted (a row an older version wrote may hold a key)."""
        for name in _REDACTED:
            value = getattr(run, name)
            if isinstance(value, str):
                setattr(run, name, redact_text(value))
        cutoff = self._cutoff()
        if run.status == RunStatus.RUNNING and cutoff is not None and run.started_at < cutoff:
            run.status = RunStatus.ABANDONED
        return run

    def close(self) -> None:
        """Close the connection."""
        self._store.close()


@dataclass
class _Pending:
    rows: list[list[Any]] = field(default_factory=list)
    done: list[Path] = field(default_factory=list)  # to remove once committed


def _merge_pending_row(conn: sqlite3.Connection, row: list[Any]) -> None:
    """Write a pending run (inside the caller's transaction), never over a newer state:
    only where the table has no row for it, or one still ``running``."""
    stored = conn.execute("SELECT status FROM pipeline_runs WHERE id = ?", (row[0],)).fetchone()
    if stored is None or stored[0] == "running":
        account(conn, row[0], lambda: conn.execute(_INSERT, row))


_TEXT_COLUMNS = frozenset(
    {
        "conversation_id", "message_id", "provider", "model", "failed_stage", "error_type",
        "error_message", "prompt", "response", "price_version", "session_id", "repo",
        "branch", "trace_id", "span_id",
    }
)  # fmt: skip
_INT_COLUMNS = frozenset(
    {
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "retries",
        "cache_write_1h_tokens", "reasoning_tokens",
    }
)  # fmt: skip
_MAX_COUNT = 2**53  # tokens and retries: exact as floats, far beyond any real run
_MAX_COST_USD = 1e9


def _pending_row(path: Path, run_id: str) -> tuple[list[Any] | None, str]:
    """(row, "") for a run file this module wrote, else (None, what is wrong with it).

    The file is outside data, however it came there: every column is checked as the
    table and the reports need it (types, finite numbers, JSON where JSON is kept),
    and outside text is redacted again, so a file can add a run but break nothing.
    """
    try:
        row = json.loads(pending.read_capped(path))
    except (OSError, ValueError) as error:
        return None, str(error)
    if not isinstance(row, list) or len(row) != len(_NAMES):
        return None, "not a run row"
    values = dict(zip(_NAMES, row, strict=True))
    if values["id"] != run_id:
        return None, "its id is not its name"
    if values["status"] not in STATUSES or values["status"] == "abandoned":
        return None, "no run status"
    for name in ("started_at", "finished_at", "duration_ms", "cost_usd", "ttft_ms"):
        value = values[name]
        optional = name in ("cost_usd", "ttft_ms")
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{name} is not a number"
        if not math.isfinite(value) or value < 0 or (name == "cost_usd" and value > _MAX_COST_USD):
            return None, f"{name} is out of range"
    for name in _INT_COLUMNS:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
            return None, f"{name} is not a count"
    for name in _TEXT_COLUMNS:
        value = values[name]
        if value is not None and not isinstance(value, str):
            return None, f"{name} is not text"
        if isinstance(value, str):
            row[_NAMES.index(name)] = redact_text(value)
    for name, kind in (("stages", list), ("classifiers", dict)):
        try:
            if not isinstance(json.loads(values[name]), kind):
                raise ValueError(name)
        except (TypeError, ValueError):
            return None, f"{name} is not what a run keeps"
    return row, ""


def _run(row: tuple[Any, ...]) -> RunRecord:
    values = dict(zip(_NAMES, row, strict=True))
    values["stages"] = [StageRecord(**stage) for stage in json.loads(values["stages"])]
    values["classifiers"] = json.loads(values["classifiers"])
    return RunRecord(**values)


_SESSION_ID: list[str] = []


def session_id() -> str:
    """This process's session: ``ASSISTANT_SESSION_ID`` when a wrapper sets one (at
    most 64 printable characters, and nothing that looks like a secret), else a new
    id, the same for every run of the process (an ``ask``, or one ``chat``)."""
    if not _SESSION_ID:
        given = os.environ.get("ASSISTANT_SESSION_ID", "").strip()
        valid = 0 < len(given) <= 64 and given.isascii() and given.isprintable()
        # A wrapper that passes a token as the session (or a key pasted there) would put
        # it in every run and in `monitor usage session`: such a value is not used.
        valid = valid and not holds_secret(given)
        _SESSION_ID.append(given if valid else "s-" + uuid.uuid4().hex[:12])
    return _SESSION_ID[0]


def now() -> float:
    """Wall-clock time for run records."""
    return time.time()
