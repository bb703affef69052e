"""``assistant monitor serve``'s routes, as a starlette application.

Endpoints (JSON unless said otherwise; HEAD wherever GET is):

* ``/live``: the process is up (never needs the token);
* ``/ready``: the database and the metrics store are usable (200, else 503);
* ``/health``: health+json, 200 or 503 when unhealthy; computed at most every
  ``cache_seconds`` so a flood of probes does not hammer the LLM API;
* ``/metrics``: Prometheus text 0.0.4, or OpenMetrics when ``Accept`` asks
  (prometheus_client's negotiation), gzip when ``Accept-Encoding`` allows;
* ``/api/metrics``, ``/api/runs``, ``/api/breakers``, ``/api/timeseries``,
  ``/api/alerts``: the JSON API (``/openapi.json`` describes it);
* ``/api/alerts/stream``: server-sent events, one per alert transition;
* ``/dashboard``: the web dashboard (a static page; its API calls carry the token).

Every answer that reads SQLite is computed in a worker thread, off the event loop,
and shared (see :mod:`assistant_monitoring.server.shared`). Errors are JSON: 400 for
a bad parameter, 401 without the token, 404, 405 with ``Allow``, 503 for a damaged
or locked store, never a traceback.

starlette is imported only by ``monitor serve`` (this module), never by the other
commands: ``tests/test_startup.py`` checks it. What the answers need is imported here,
at the top, not in the worker threads: two threads importing one module at once (the
first /ready and /health after start) could meet Python's import locks half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hmac
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant_monitoring import __version__
from assistant_monitoring.alerts import AlertBook
from assistant_monitoring.errors import MonitoringError, shown
from assistant_monitoring.health.checks import check_database_sync
from assistant_monitoring.health.service import run_health
from assistant_monitoring.metrics.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    wants_openmetrics,
)
from assistant_monitoring.metrics.runtime import current_runtime
from assistant_monitoring.metrics.service import exposition_bytes
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.server.api import ENDPOINTS
from assistant_monitoring.server.guard import ConnectionBook
from assistant_monitoring.server.openapi import openapi_document
from assistant_monitoring.server.shared import DaemonThreadPool, SharedAnswers
from assistant_monitoring.settings import Settings
from assistant_monitoring.sqlitefile import present

API_TTL_SECONDS = 1.0  # each /api/* answer is computed at most once a second
API_STALE_SECONDS = 1.0  # and may be served this much older while it is recomputed
_WORKERS = 4  # threads computing answers; single flight keeps one per answer
_PROBE_WORKERS = 2  # /health and /ready
_STREAM_TICK_SECONDS = 1.0
_STREAM_KEEPALIVE_SECONDS = 15.0
_REPLAY_AT_MOST = 100  # transitions replayed to a stream that reconnects
_GZIP_MIN_BYTES = 1024  # smaller bodies are not worth the CPU
# Query parameters read at most: more is a 400 (no API call takes over 8), so that the
# cost of parsing a query never grows with what a client sends.
_MAX_QUERY_FIELDS = 32
_LOGGED_QUERY_CHARS = 512  # the access log keeps this much of a query
# The documented ceiling of the server's resident set (README, "Under load and
# attack"): idle (50 to 80 MiB measured, with a 30-day store) plus what load can add:
# the answers kept (16 MiB a cache, server/shared.py), four workers building answers
# (about 9 MiB each for a 1.5 MB /api/runs answer), 16 slow readers' unsent answers
# (about 1.75 MiB each, server/guard.py) and the allocator's slack.
# tests/test_deploy_limits.py holds the deploy configs' memory limits above it.
RSS_CEILING_MIB = 200

Answer = tuple[int, bytes, str]  # status, body, content type
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ServerConfig:
    """How the server runs."""

    host: str = "127.0.0.1"
    port: int = 9464
    token: str | None = None
    cache_seconds: float = 5.0
    flush_interval: float = 5.0
    max_connections: int = 512


class AlertBroadcaster:
    """Fan alert transitions out to the open server-sent-event streams (event loop only)."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[dict[str, Any]]] = []

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A new stream's queue."""
        subscriber: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
        self._queues.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: asyncio.Queue[dict[str, Any]]) -> None:
        """Forget a closed stream."""
        with contextlib.suppress(ValueError):
            self._queues.remove(subscriber)

    def publish(self, event: str, alert: Any) -> None:
        """Send one transition (an Alert) to every stream; slow streams drop events."""
        message = event_message(event, alert)
        for subscriber in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.put_nowait(message)


def event_message(event: str, alert: Any) -> dict[str, Any]:
    """A transition as streamed; ``at`` (when it happened) is also its event id."""
    at = alert.started_at if event == "firing" else alert.resolved_at
    return {"event": event, "at": at, **alert.as_json()}


def sse_bytes(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, default=str)
    return f"id: {message['at']!r}\nevent: alert\ndata: {data}\n\n".encode()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (``==`` tells an attacker how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries ``token`` (the scheme is case-insensitive)."""
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower() == "bearer" and same_secret(credentials.strip(), token)


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, default=str).encode()


# The files the dashboard loads besides itself: path -> (package file, content type).
STATIC_PATHS = {
    "/static/uPlot.iife.min.js": ("static/vendor/uPlot.iife.min.js", "text/javascript"),
    "/static/uPlot.min.css": ("static/vendor/uPlot.min.css", "text/css"),
}


def _response(status: int, body: bytes, content_type: str, **headers: str) -> Response:
    return Response(
        body, status, headers={"cache-control": "no-store", **headers}, media_type=content_type
    )


def json_response(status: int, document: Any, **headers: str) -> Response:
    return _response(status, json_bytes(document), "application/json", **headers)


class MonitorApp:
    """What the routes share: settings, the answer caches, the alert streams."""

    def __init__(
        self, settings: Settings, config: ServerConfig, connections: ConnectionBook | None = None
    ) -> None:
        self.settings = settings
        self.config = config
        # The server's book of connections (server/guard.py), told when each request's
        # answer is done; None in process (tests) or under another server.
        self.connections = connections
        self.access_log = settings.monitoring.access_log
        # Event streams live as long as their browser tab: at most a quarter of the
        # connections, so that dashboards left open cannot hold every place.
        self.max_streams = max(1, config.max_connections // 4)
        self.streams = 0
        self.executor = DaemonThreadPool(_WORKERS, "answers")
        self.answers: SharedAnswers[Answer] = SharedAnswers(
            self.executor, ttl=API_TTL_SECONDS, stale=API_STALE_SECONDS
        )
        # The probes have threads of their own: slow /api/* computations with many
        # different parameters must not keep /health and /ready waiting.
        self.probes = DaemonThreadPool(_PROBE_WORKERS, "probes")
        # /health decides deploys: never served past its cache time.
        self.health: SharedAnswers[Answer] = SharedAnswers(self.probes, ttl=config.cache_seconds)
        self.readiness: SharedAnswers[Answer] = SharedAnswers(self.probes, ttl=API_TTL_SECONDS)
        self.alerts = AlertBroadcaster()
        self.stopping = threading.Event()  # set by the signal handler: streams end
        self.requests_served = 0
        self._dashboard: bytes | None = None
        self._assets: dict[str, bytes] = {}
        self.asgi: ASGIApp = _Guard(self, self._starlette())

    # -- answers --------------------------------------------------------------------

    def health_answer(self) -> Future[Answer]:
        """The health report, shared (also what the periodic job refreshes)."""
        return self.health.get("health", self._compute_health)

    def _compute_health(self) -> Answer:

        runtime = current_runtime()
        report = run_health(
            self.settings, instrumentation=runtime.instrumentation if runtime else None
        )
        status = 503 if report.status.value == "unhealthy" else 200
        body = json_bytes(report.as_json(version=__version__))
        return status, body, "application/health+json"

    def _compute_ready(self) -> Answer:

        settings = self.settings
        database = check_database_sync(
            settings.database_path, slow_ms=1e9, busy_timeout_ms=settings.database.busy_timeout_ms
        )
        store = MetricsStore(settings.monitoring_db_path)
        try:
            store.connect().execute("SELECT 1").fetchone()
            store_ok = True
        except Exception:
            store_ok = False
        finally:
            store.close()
        ready = database.status.value != "unhealthy" and store_ok
        document = {
            "status": "ready" if ready else "not ready",
            "database": database.message,
            "store": "usable" if store_ok else "unusable",
        }
        return (200 if ready else 503), json_bytes(document), "application/json"

    def _compute_exposition(self, openmetrics: bool) -> bytes:

        runtime = current_runtime()
        if runtime is not None:
            runtime.flush()  # what this process recorded is in the scrape too
        return exposition_bytes(self.settings, openmetrics=openmetrics)

    def _compute_api(self, path: str, query: dict[str, str]) -> Answer:
        return 200, json_bytes(ENDPOINTS[path](self.settings, query)), "application/json"

    @staticmethod
    async def _settled(future: Future[Answer]) -> Answer:
        if not future.done():
            await asyncio.wrap_future(future)
        return future.result()

    # -- routes ---------------------------------------------------------------------

    def _starlette(self) -> Starlette:
        handlers: dict[str, Handler] = {
            "/": self.root,
            "/live": self.live,
            "/ready": self.ready,
            "/health": self.health_route,
            "/metrics": self.metrics,
            **dict.fromkeys(ENDPOINTS, self.json_api),
            "/api/alerts/stream": self.alert_stream,
            "/dashboard": self.dashboard,
            **dict.fromkeys(STATIC_PATHS, self.static_asset),
            "/openapi.json": self.openapi,
        }
        self._paths = list(handlers)
        # starlette adds HEAD to every GET route, and answers 405 with Allow otherwise.
        routes = [Route(path, _never_crash(h), methods=["GET"]) for path, h in handlers.items()]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        # `/live/` is 404, not a redirect to a URL built from the client's Host header.
        app.router.redirect_slashes = False
        return app

    async def root(self, request: Request) -> Response:
        """A browser opening the server's address gets the dashboard (relative Location)."""
        headers = {"cache-control": "no-store"}
        return RedirectResponse("/dashboard", status_code=307, headers=headers)

    async def live(self, request: Request) -> Response:
        return json_response(200, {"status": "live", "version": __version__})

    async def ready(self, request: Request) -> Response:
        return _response(*await self._settled(self.readiness.get("/ready", self._compute_ready)))

    async def health_route(self, request: Request) -> Response:
        return _response(*await self._settled(self.health_answer()))

    async def metrics(self, request: Request) -> Response:
        # prometheus_client decides which format the client prefers; the content type
        # says what is sent (OpenMetrics 1.0.0 or text 0.0.4, names escaped the
        # classic way), not the version or escaping the client asked for.
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else PROMETHEUS_CONTENT_TYPE
        wants_gzip = _accepts_gzip(request.headers.get("accept-encoding", ""))
        key = ("/metrics", openmetrics, wants_gzip)

        def compute() -> Answer:
            body = self._compute_exposition(openmetrics)
            if wants_gzip and len(body) >= _GZIP_MIN_BYTES:
                return 200, gzip.compress(body, compresslevel=5), "gzip"
            return 200, body, ""

        status, body, encoding = await self._settled(self.answers.get(key, compute))
        headers = {"content-encoding": encoding} if encoding else {}
        return _response(status, body, content_type, vary="accept, accept-encoding", **headers)

    async def json_api(self, request: Request) -> Response:
        path = request.url.path
        # Blank values kept: `?since=` is a mistake to report, not a parameter to drop.
        try:
            pairs = parse_qsl(
                request.url.query, keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS
            )
        except ValueError:
            return json_response(400, {"error": f"over {_MAX_QUERY_FIELDS} query parameters"})
        query = dict(pairs)
        key = (path, tuple(sorted(query.items())))
        future = self.answers.get(key, lambda: self._compute_api(path, query))
        return _response(*await self._settled(future))

    async def dashboard(self, request: Request) -> Response:
        if self._dashboard is None:
            page = resources.files("assistant_monitoring.server").joinpath("static/dashboard.html")
            self._dashboard = page.read_bytes()
        return _response(200, self._dashboard, "text/html; charset=utf-8")

    async def static_asset(self, request: Request) -> Response:
        """The vendored chart library (uPlot, MIT): the dashboard loads no CDN."""

        name, content_type = STATIC_PATHS[request.url.path]
        body = self._assets.get(name)
        if body is None:
            body = resources.files("assistant_monitoring.server").joinpath(name).read_bytes()
            self._assets[name] = body
        return _response(200, body, content_type, **{"cache-control": "public, max-age=86400"})

    async def openapi(self, request: Request) -> Response:

        return json_response(200, openapi_document())

    async def alert_stream(self, request: Request) -> Response:
        """Server-sent events: one ``alert`` event per transition, a comment every 15 s."""
        headers = {"cache-control": "no-store", "connection": "close"}
        if request.method == "HEAD":
            return Response(b"", 200, headers=headers, media_type="text/event-stream")
        if self.streams >= self.max_streams:
            message = f"{self.max_streams} alert streams are open already: try again later"
            return json_response(503, {"error": message}, **{"retry-after": "30"})
        since = _event_id(request.headers.get("last-event-id", ""))
        # Counted here, with no await between the check and the count (streams asked
        # at the same moment all passed a check made later), until the response ends.
        self.streams += 1
        return _CountedStream(
            self, self._events(since), headers=headers, media_type="text/event-stream"
        )

    async def _events(self, since: float | None) -> Any:
        """The stream; a browser that reconnects (``Last-Event-ID``) gets what it missed."""
        subscriber = self.alerts.subscribe()
        quiet = 0.0
        try:
            yield b"retry: 2000\n: connected\n\n"
            if since is not None:
                missed = await asyncio.wrap_future(self.executor.submit(self._missed, since))
                for message in missed:
                    yield sse_bytes(message)
                    since = max(since, message["at"])
            while not self.stopping.is_set():
                try:
                    message = await asyncio.wait_for(subscriber.get(), _STREAM_TICK_SECONDS)
                except TimeoutError:
                    quiet += _STREAM_TICK_SECONDS
                    if quiet >= _STREAM_KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                if since is None or message["at"] > since:  # not replayed already
                    yield sse_bytes(message)
        finally:
            self.alerts.unsubscribe(subscriber)

    def _missed(self, since: float) -> list[dict[str, Any]]:

        path = self.settings.monitoring_db_path
        if not present(path):
            return []
        store = MetricsStore(path, read_only_ok=True)
        try:
            changes = AlertBook(store).changes_since(since)
        finally:
            store.close()
        return [event_message(event, alert) for event, alert in changes[-_REPLAY_AT_MOST:]]

    # -- errors ---------------------------------------------------------------------

    async def _http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 404:
            paths = sorted(self._paths)
            return json_response(404, {"error": f"unknown path {request.url.path}", "paths": paths})
        if error.status_code == 405:
            allowed = headers.get("Allow", "GET, HEAD")
            message = f"method {request.method} not allowed on {request.url.path} (use {allowed})"
            return json_response(405, {"error": message}, allow=allowed)
        return json_response(error.status_code, {"error": error.detail}, **headers)


class _CountedStream(StreamingResponse):
    """An event stream that gives its place back (``MonitorApp.streams``) however it
    ends: finished, the client gone, or cancelled before its first event."""

    def __init__(self, monitor: MonitorApp, content: Any, **options: Any) -> None:
        super().__init__(content, **options)
        self._monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._monitor.streams -= 1


def _event_id(text: str) -> float | None:
    """A ``Last-Event-ID`` we sent (a time), or None for anything else."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _never_crash(handler: Handler) -> Handler:
    """A 500 in JSON for an unexpected error, never a crash nor a traceback on stderr.

    (starlette's handler for ``Exception`` re-raises after answering, and uvicorn then
    prints the traceback: here the error stops at the route, and the log file has it.)
    """

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except MonitoringError as error:
            # Bad input is the client's to fix (400); a damaged or locked store is the
            # server's state, reported for what it is (503), never as a crash (500).
            return json_response(400 if error.exit_code == 2 else 503, {"error": str(error)})
        except Exception as error:
            logger.opt(exception=error).error(
                f"{request.method} {request.url.path} failed: {error}"
            )
            return json_response(500, {"error": f"{type(error).__name__}: {error}"})

    return guarded


def _accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (named with a q above 0; RFC 9110 12.5.3)."""
    for part in header.split(","):
        coding, *params = (token.strip() for token in part.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class _Guard:
    """Pure ASGI middleware: the bearer token, the request count, the guard's
    bookkeeping and the access log. Nothing here costs more with a longer request."""

    def __init__(self, monitor: MonitorApp, app: Starlette) -> None:
        self.monitor = monitor
        self.app = app
        self._token = monitor.config.token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        monitor = self.monitor
        monitor.requests_served += 1
        book = monitor.connections
        connection = book.request_started(scope.get("client")) if book is not None else None
        logged = monitor.access_log
        started = time.perf_counter() if logged else 0.0
        status = 0
        reply = send
        if logged:

            async def reply(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

        try:
            if self._authorized(scope):
                await self.app(scope, receive, reply)
            else:
                await _UNAUTHORIZED(scope, receive, reply)
        finally:
            if book is not None:
                book.request_finished(connection)
            if logged:
                _access_log(scope, status, time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        token = self._token
        path = scope["path"]
        # /dashboard and its chart library hold no data; its API calls carry the token.
        if not token or path in ("/", "/live", "/dashboard", *STATIC_PATHS):
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                return bearer_matches(value.decode("latin-1"), token)
        # EventSource cannot send headers: the event stream alone takes ?token=.
        if path == "/api/alerts/stream":
            query = scope["query_string"].decode("latin-1")
            try:
                pairs = parse_qsl(query, max_num_fields=_MAX_QUERY_FIELDS)
            except ValueError:
                return False
            return same_secret(dict(pairs).get("token", ""), token)
        return False


_UNAUTHORIZED = json_response(
    401,
    {"error": "missing or wrong bearer token (MONITOR_TOKEN)"},
    **{"www-authenticate": 'Bearer realm="assistant monitor"'},
)


def _access_log(scope: Scope, status: int, seconds: float) -> None:
    """One INFO line per request (MONITOR_ACCESS_LOG); the query keeps no secret.

    At most ``_LOGGED_QUERY_CHARS`` of the query are read and kept, so a request with
    10,000 parameters costs the log no more than one with ten.
    """
    raw = scope["query_string"]
    query = raw[:_LOGGED_QUERY_CHARS].decode("latin-1")
    if query:
        # On the decoded names: `?%74oken=...` is the token too. A cut that splits
        # `token=` leaves either the name (redacted) or no secret.
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name == "token" for name, _ in pairs):
            query = "&".join(f"{k}={'[REDACTED]' if k == 'token' else v}" for k, v in pairs)
        if len(raw) > _LOGGED_QUERY_CHARS:
            query += f"... ({len(raw)} bytes)"
    # A decoded path or query may hold a newline (`/live%0a12:00:00 ERROR ...`): shown
    # escaped, so a request cannot forge a line of the log.
    logger.info(
        "{http_method} {http_path} {http_status}",
        http_method=scope["method"],
        http_path=shown(scope["path"], _LOGGED_QUERY_CHARS),
        http_query=shown(query, _LOGGED_QUERY_CHARS + 40),
        http_status=status,
        duration_ms=round(seconds * 1000, 3),
    )
