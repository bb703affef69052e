"""Trace context for pipeline runs: W3C ids always, exported spans with ``[otel]``.

Every run is a trace (run -> one span per stage -> ``chat {model}`` per LLM attempt),
whether or not anything exports it: the ids cost a few microseconds, and they are
what ties a run row, its log lines and a team's tracing backend together. This
module imports nothing heavy; :class:`Tracer` here only makes ids. With the
``[otel]`` extra and an OTLP endpoint, ``assistant_monitoring.otel`` swaps in a
tracer whose spans the OpenTelemetry SDK records and exports.

A ``TRACEPARENT`` in the environment (W3C Trace Context, as otel-cli, GitHub
Actions' OTel integrations and most CI systems set it) makes every run of the
process a child of that trace. It is parsed here, by hand, because it is needed
without the extra too; the format is one fixed-width line (see :func:`parse_traceparent`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# W3C Trace Context level 1, section 3.2: version "-" trace-id "-" parent-id "-" flags,
# lowercase hex. Version ff is invalid; a future version may append fields after a "-".
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-"
    r"(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

AttributeValue = str | bool | int | float | list[str]
Attributes = Mapping[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class SpanContext:
    """A span's identity as W3C Trace Context writes it (lowercase hex)."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    sampled: bool = True
    remote: bool = False

    def traceparent(self) -> str:
        """This context as a ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The parent a ``traceparent`` value names, or None when it is absent or invalid.

    Invalid values are ignored, as the spec asks (a broken header must not break the
    request): a new trace starts instead.
    """
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace, span = match["version"], match["trace"], match["span"]
    if version == "ff" or trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    if version == "00" and match["rest"]:
        return None  # version 00 has exactly four fields
    return SpanContext(trace, span, sampled=bool(int(match["flags"], 16) & 1), remote=True)


def new_trace_id() -> str:
    """A random W3C trace id (never all zeros)."""
    value = os.urandom(16).hex()
    return value if value != _ZERO_TRACE else new_trace_id()


def new_span_id() -> str:
    """A random W3C span id (never all zeros)."""
    value = os.urandom(8).hex()
    return value if value != _ZERO_SPAN else new_span_id()


class Span:
    """A span in progress. This base keeps its ids only; the OTel one records it all.

    Status follows the run's three outcomes: success leaves the status unset,
    failure sets ERROR with ``error.type``, an interruption (SIGTERM, Ctrl-C) is
    not a failure and says so in ``assistant.status``.
    """

    __slots__ = ("context", "name")
    recording = False  # whether attributes go anywhere (build costly ones only then)

    def __init__(self, name: str, context: SpanContext) -> None:
        self.name = name
        self.context = context

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute (ignored when nothing records)."""

    def set_attributes(self, attributes: Attributes) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Add a timestamped event (a retry, a breaker rejection, the first chunk)."""

    def fail(self, error_type: str, message: str | None = None) -> None:
        """Mark the span failed: status ERROR, ``error.type``."""

    def interrupt(self) -> None:
        """Mark the span interrupted from outside (not a failure)."""

    def end(self) -> None:
        """End the span (the exporter sends it later, in the background)."""


class Tracer:
    """Makes spans. This base only makes ids, for logs and run rows."""

    def start_span(
        self,
        name: str,
        *,
        parent: Span | SpanContext | None,
        kind: str = "internal",
        attributes: Attributes | None = None,
    ) -> Span:
        """A started span: a child of ``parent``, or the root of a new trace."""
        if isinstance(parent, Span):
            parent = parent.context
        trace_id = parent.trace_id if parent is not None else new_trace_id()
        sampled = parent.sampled if parent is not None else True
        return Span(name, SpanContext(trace_id, new_span_id(), sampled))


_current: ContextVar[Span | None] = ContextVar("assistant_span", default=None)
_process_parent: list[SpanContext | None] = []


def process_parent() -> SpanContext | None:
    """The ``TRACEPARENT`` this process was started under (read once)."""
    if not _process_parent:
        _process_parent.append(parse_traceparent(os.environ.get("TRACEPARENT")))
    return _process_parent[0]


def add_event(name: str, attributes: Attributes | None = None) -> None:
    """Add an event to the current span, if there is one."""
    span = _current.get()
    if span is not None:
        span.add_event(name, attributes)


@contextmanager
def span(
    tracer: Tracer,
    name: str,
    *,
    kind: str = "internal",
    attributes: Attributes | None = None,
) -> Iterator[Span]:
    """Run the block in a new span, child of the current one (or of ``TRACEPARENT``).

    Log lines written inside carry its ``trace_id`` and ``span_id``. An exception
    leaving the block marks the span failed (or interrupted) and propagates.
    """
    from loguru import logger

    from assistant_monitoring.errors import is_interruption

    parent: Span | SpanContext | None = _current.get() or process_parent()
    started = tracer.start_span(name, parent=parent, kind=kind, attributes=attributes)
    token = _current.set(started)
    try:
        with logger.contextualize(
            trace_id=started.context.trace_id, span_id=started.context.span_id
        ):
            yield started
    except BaseException as error:
        if is_interruption(error):
            started.interrupt()
        else:
            started.fail(type(error).__name__, str(error))
        raise
    finally:
        _current.reset(token)
        started.end()
