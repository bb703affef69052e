"""OTLP exports that failed: counted by reason, and said once per signal and reason.

The OTLP/HTTP exporters tell their caller only SUCCESS or FAILURE; why is in a
line of their own log per failed batch (in the files only, without the endpoint
or what to do). Ours (:mod:`.exporters`) send through a ``requests.Session``
whose response hook notes the HTTP status of each answer in the export call
running on that thread. When a call fails, its last status is the reason:

* counted in ``assistant_metrics_errors_total{operation="otel_<signal>_<reason>"}``,
  once per export call that finally failed (the exporter's own retries of 429 and
  502/503/504 inside one call are one failure). Reasons: ``http_<status>`` for the
  statuses a collector or its proxy sends (:data:`STATUSES`), else ``http_3xx``,
  ``http_4xx``, ``http_5xx`` or ``http_other`` (a label is a closed set, never
  what the network says); ``no_response`` when no answer came (unreachable, timed
  out, TLS refused, or dropped before sending); ``failed`` when the status cannot
  be seen (a credential-provider session of the SDK's sends those exports). A
  redirect is a failure too: the exporters do not follow it, and the data is lost.
* said once per process per signal and reason (so per status, for the statuses
  of :data:`STATUSES`), as a warning naming the signal, the endpoint (without its
  userinfo, query or fragment), the status and what to do. Not rate-limited: a
  short ``ask`` says it once either way, and in a long ``chat`` the same sentence
  every few minutes would say nothing new, while the counter keeps counting every
  failed batch. Per signal, since the three can go to different endpoints and
  fail for different reasons (a 413 on logs only).

Headers are never read, and the endpoint is shown without credentials.

An export still retrying at the exit's deadline (a 429 waiting out its
Retry-After) is left behind like any other (see ``OtelExport.shutdown``); when it
has had a refusal by then, that refusal is its outcome, counted and said then.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

R = TypeVar("R")

# Statuses with a label of their own: what collectors, gateways and proxies answer.
STATUSES = frozenset({400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 502, 503, 504})
NO_RESPONSE = "no_response"
UNSEEN = "failed"
EVENT = "otel_export_failed"
DEFAULT_ENDPOINT = "http://localhost:4318"
# The SDK's documented variables naming a credential-provider session: with one
# set, the exporter builds its session from it, and ours (with the hook) is not used.
CREDENTIAL_PROVIDER = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER"

_BATCH_SIZE = {
    "traces": "lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "logs": "lower OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "metrics": "export fewer series",
}
_EXPORT_LESS_OFTEN = {
    "traces": "OTEL_BSP_SCHEDULE_DELAY",
    "logs": "OTEL_BLRP_SCHEDULE_DELAY",
    "metrics": "OTEL_METRIC_EXPORT_INTERVAL",
}


def reason(status: int | None, *, seen: bool = True) -> str:
    """The label's reason for a failed export whose last HTTP status was ``status``."""
    if status is None:
        return NO_RESPONSE if seen else UNSEEN
    if status in STATUSES:
        return f"http_{status}"
    if 300 <= status < 600:
        return f"http_{status // 100}xx"
    return "http_other"


def operation(signal: str, status: int | None, *, seen: bool = True) -> str:
    """``otel_traces_http_429``: the ``operation`` label of one failed export."""
    return f"otel_{signal}_{reason(status, seen=seen)}"


def shown_endpoint(url: str) -> str:
    """``url`` without userinfo, query and fragment: what a log line may say."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(an endpoint that does not parse)"
    host = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return f"{shown}?<query hidden>" if parts.query else shown


def signal_endpoint(signal: str, environ: Mapping[str, str] | None = None) -> str:
    """Where the exporter of ``signal`` sends, by the OTLP rule the SDK applies: the
    signal's own variable as is, else the base URL plus ``/v1/<signal>``."""
    env = os.environ if environ is None else environ
    own = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own:
        return own
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{base.removesuffix('/')}/v1/{signal}"


def advice(signal: str, status: int | None, *, seen: bool = True) -> str:
    """What to do about one kind of failure."""
    upper = signal.upper()
    if status is None:
        if not seen:
            return (
                "its HTTP status is not visible (an SDK credential-provider session sends "
                "this signal); the exporter's own error is in the log file"
            )
        return (
            "check that the collector is up and reachable from here, and its TLS "
            "(OTEL_EXPORTER_OTLP_CERTIFICATE); the exporter's own error is in the log file"
        )
    if 300 <= status < 400:
        return (
            "the exporter does not follow redirects: set the endpoint to the address it "
            "redirects to (https:// ?)"
        )
    if status in (401, 403):
        return (
            "the collector does not accept our credentials: check OTEL_EXPORTER_OTLP_HEADERS "
            f"(or OTEL_EXPORTER_OTLP_{upper}_HEADERS)"
        )
    if status in (404, 405):
        return (
            "nothing takes OTLP there: OTEL_EXPORTER_OTLP_ENDPOINT is the base URL (the "
            f"exporter adds /v1/{signal}), OTEL_EXPORTER_OTLP_{upper}_ENDPOINT the full one"
        )
    if status == 400:
        return (
            "the collector could not read the request: check that the endpoint is an "
            "OTLP/HTTP receiver (port 4318; 4317 is gRPC), and see the collector's log"
        )
    if status == 413:
        return (
            f"the batch is larger than the collector takes: {_BATCH_SIZE[signal]}, set "
            "OTEL_EXPORTER_OTLP_COMPRESSION=gzip, or raise the collector's request size limit"
        )
    if status == 415:
        return "the collector does not take this encoding: set OTEL_EXPORTER_OTLP_COMPRESSION=gzip"
    if status == 429:
        return (
            "the collector is throttling: raise its rate limit, or export less often "
            f"({_EXPORT_LESS_OFTEN[signal]})"
        )
    if status in (408, 502, 503, 504):
        return "the collector, or a proxy in front of it, is down or overloaded: check its health"
    if status >= 500:
        return "the collector failed on the request: see the collector's log"
    return "the collector rejected the request: see the collector's log"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _failed(status: int | None) -> bool:
    return status is not None and not 200 <= status < 300


@dataclass(eq=False)
class _Call:
    """One export call: the last HTTP status it was answered with."""

    signal: str
    status: int | None = None
    settled: bool = False


class ExportWatch:
    """One per process: the failed exports of its three signals.

    ``count(operation)`` adds one to ``assistant_metrics_errors_total`` (None: count
    nowhere); ``say(signal, status, message, operation)`` logs the warning.
    """

    def __init__(
        self,
        count: Callable[[str], None] | None = None,
        *,
        say: Callable[[str, int | None, str, str], None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.count = count
        self.say = say if say is not None else _warn
        self._environ = environ
        self._lock = threading.Lock()
        self._said: set[tuple[str, str]] = set()
        self._running: list[_Call] = []
        self._unseen: set[str] = set()  # signals whose session is not ours
        self._local = threading.local()

    # -- the exporters' side ----------------------------------------------------

    def session(self, signal: str) -> Any:
        """A ``requests.Session`` noting each answer's status; None when a credential
        provider is configured for ``signal`` (the exporter then makes its own)."""
        env = os.environ if self._environ is None else self._environ
        own = f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal.upper()}_CREDENTIAL_PROVIDER"
        if env.get(CREDENTIAL_PROVIDER) or env.get(own):
            self._unseen.add(signal)
            return None
        requests = importlib.import_module("requests")  # the exporters' own dependency
        session = requests.Session()
        session.hooks["response"].append(self.on_response)
        return session

    def on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """The session's response hook (returns None: the response goes on unchanged)."""
        call = getattr(self._local, "call", None)
        if call is not None:
            status = getattr(response, "status_code", None)
            call.status = status if isinstance(status, int) else None

    def run(self, signal: str, export: Callable[[], R]) -> R:
        """Run one export call of ``signal``; count and say it when it failed.

        ``export`` returns the exporter's result enum (SUCCESS or FAILURE). A redirect
        the exporter took for success is a FAILURE here: nothing was delivered.
        """
        call = _Call(signal)
        outer = getattr(self._local, "call", None)
        self._local.call = call
        with self._lock:
            self._running.append(call)
        failed = True
        try:
            result = export()
            kind: Any = type(result)
            failed = result != kind.SUCCESS or _failed(call.status)
            if failed and result == kind.SUCCESS:
                result = kind.FAILURE
            return result
        finally:
            self._local.call = outer
            self._settle(call, failed=failed)

    # -- the exit's side ----------------------------------------------------------

    def abandon(self) -> set[str]:
        """At the exit's deadline: count the calls still running that were refused
        (a 429 or 503 waiting to be tried again); the signals they were of."""
        with self._lock:
            refused = [call for call in self._running if _failed(call.status)]
        for call in refused:
            self._settle(call, failed=True)
        return {call.signal for call in refused}

    # -- counting and saying ----------------------------------------------------

    def _settle(self, call: _Call, *, failed: bool) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                self._running.remove(call)
            if call.settled or not failed:
                return
            call.settled = True
            status = call.status if _failed(call.status) else None
            seen = call.signal not in self._unseen
            name = operation(call.signal, status, seen=seen)
            first = (call.signal, name) not in self._said
            self._said.add((call.signal, name))
        if self.count is not None:
            with contextlib.suppress(Exception):  # counting never breaks an export
                self.count(name)
        if first:
            with contextlib.suppress(Exception):
                self.say(call.signal, status, self.message(call.signal, status, seen=seen), name)

    def message(self, signal: str, status: int | None, *, seen: bool = True) -> str:
        """The warning for the first failure of its kind."""
        endpoint = shown_endpoint(signal_endpoint(signal, self._environ))
        if status is None:
            what = (
                f"OTLP {signal} export to {endpoint} failed"
                if not seen
                else f"OTLP {signal} export to {endpoint} failed: no HTTP answer"
            )
        else:
            what = (
                f"OTLP {signal} export refused: {endpoint} answered HTTP {status} "
                f"({_phrase(status)})"
            )
        name = operation(signal, status, seen=seen)
        return (
            f"{what}; {advice(signal, status, seen=seen)}. Counted in "
            f'assistant_metrics_errors_total{{operation="{name}"}}; said once per process, '
            "the next ones only counted"
        )


def _warn(signal: str, status: int | None, message: str, name: str) -> None:
    from loguru import logger

    logger.bind(event=EVENT, signal=signal, http_status=status, operation=name).warning(message)
