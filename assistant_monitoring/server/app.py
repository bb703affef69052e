"""``assistant monitor serve``: the long-lived HTTP face of the toolkit (what pm2 runs).

Endpoints (JSON unless said otherwise):

* ``GET /live``: the process is up (never needs the token);
* ``GET /ready``: the database and the metrics store are usable (200, else 503);
* ``GET /health``: health+json, 200 or 503 when unhealthy; cached for
  ``cache_seconds`` so a flood of probes does not hammer the LLM API;
* ``GET /metrics``: Prometheus text 0.0.4, or OpenMetrics when ``Accept`` asks;
* ``GET /api/metrics?period=1h``, ``/api/runs?status=failed&limit=5``, ``/api/breakers``.

Bad requests get a JSON error and never take the server down: unknown path 404, a
bad parameter 400, a request line over 64 KiB 414; idle or slow clients time out.
Besides answering, the server flushes its own metrics, samples memory and CPU,
records health history and applies retention, every ``flush_interval`` seconds.

It is the standard library's threading HTTP server: no extra dependency, one
thread per connection, and every handler only reads SQLite or a cached value.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from assistant_monitoring import __version__
from assistant_monitoring.errors import MonitoringError
from assistant_monitoring.server.api import ENDPOINTS
from assistant_monitoring.settings import Settings

_REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class ServerConfig:
    """How the server runs."""

    host: str = "127.0.0.1"
    port: int = 9464
    token: str | None = None
    cache_seconds: float = 5.0
    flush_interval: float = 5.0


class HealthCache:
    """The last health report, recomputed at most every ``seconds`` (one at a time)."""

    def __init__(self, compute: Callable[[], tuple[int, dict[str, Any]]], seconds: float) -> None:
        self._compute = compute
        self._seconds = seconds
        self._lock = threading.Lock()
        self._value: tuple[int, dict[str, Any]] | None = None
        self._at = 0.0

    def get(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, health+json document)."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._at >= self._seconds:
                self._value = self._compute()
                self._at = now
            return self._value


class AlertBroadcaster:
    """Fan alert transitions out to the server-sent-event streams that are open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[dict[str, Any]]] = []

    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        """A new stream's queue."""
        subscriber: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=100)
        with self._lock:
            self._queues.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue[dict[str, Any]]) -> None:
        """Forget a closed stream."""
        with self._lock:
            if subscriber in self._queues:
                self._queues.remove(subscriber)

    def publish(self, event: str, alert: Any) -> None:
        """Send one transition (an Alert) to every stream; slow streams drop events."""
        message = {"event": event, **alert.as_json()}
        with self._lock:
            for subscriber in self._queues:
                with contextlib.suppress(queue.Full):
                    subscriber.put_nowait(message)


class MonitorServer(ThreadingHTTPServer):
    """The HTTP server and what its handlers share."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, settings: Settings, config: ServerConfig) -> None:
        self.settings = settings
        self.config = config
        self.health = HealthCache(self._compute_health, config.cache_seconds)
        self.requests_served = 0
        self.in_flight = 0
        self.alerts = AlertBroadcaster()
        self.stopping = threading.Event()
        # /metrics bodies, shared for a second by concurrent scrapes: 200 threads each
        # opening SQLite at once spent most of their time fighting over its lock.
        self._exposition_lock = threading.Lock()
        self._exposition: dict[bool, tuple[float, bytes]] = {}
        self._counter_lock = threading.Lock()
        super().__init__((config.host, config.port), _Handler)

    @property
    def url(self) -> str:
        """Where it listens."""
        host = self.server_address[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{self.server_address[1]}"

    def exposition(self, *, openmetrics: bool) -> bytes:
        """The /metrics body, rebuilt at most once a second (one builder at a time)."""
        from assistant_monitoring.metrics.runtime import current_runtime
        from assistant_monitoring.metrics.service import exposition_text

        with self._exposition_lock:
            cached = self._exposition.get(openmetrics)
            if cached is not None and time.monotonic() - cached[0] < 1.0:
                return cached[1]
            runtime = current_runtime()
            if runtime is not None:
                runtime.flush()  # what this process recorded is in the scrape too
            body = exposition_text(self.settings, openmetrics=openmetrics).encode()
            self._exposition[openmetrics] = (time.monotonic(), body)
            return body

    def count_request(self) -> None:
        with self._counter_lock:
            self.requests_served += 1

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._counter_lock:
            self.in_flight += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._counter_lock:
                self.in_flight -= 1

    def drain(self, timeout: float) -> int:
        """Stop accepting; wait up to ``timeout`` s for requests in flight; return those left."""
        self.stopping.set()  # event streams end at their next tick
        self.server_close()
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.in_flight

    def _compute_health(self) -> tuple[int, dict[str, Any]]:
        from assistant_monitoring.health.service import run_health
        from assistant_monitoring.metrics.runtime import current_runtime

        runtime = current_runtime()
        report = run_health(
            self.settings, instrumentation=runtime.instrumentation if runtime else None
        )
        status = 503 if report.status.value == "unhealthy" else 200
        return status, report.as_json(version=__version__)


class _Handler(BaseHTTPRequestHandler):
    server: MonitorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    timeout = _REQUEST_TIMEOUT_SECONDS  # slow or half-open clients are dropped

    def log_message(self, format: str, *args: Any) -> None:
        return  # access logs would drown the JSON log; metrics count requests instead

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers malformed requests itself (400, 414 for a request
        # line over 64 KiB, 501 for other methods): in JSON, like everything else.
        self.close_connection = True
        self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def do_GET(self) -> None:
        self.server.count_request()
        parts = urlsplit(self.path)
        route = parts.path.rstrip("/") or "/"
        # Blank values kept: `?since=` is a mistake to report, not a parameter to drop.
        pairs = parse_qs(parts.query, keep_blank_values=True)
        query = {key: values[-1] for key, values in pairs.items()}
        # /dashboard is a static page holding no data; its API calls carry the token.
        if route not in ("/live", "/dashboard") and not self._authorized():
            self._send_json(401, {"error": "missing or wrong bearer token (MONITOR_TOKEN)"})
            return
        handler = _ROUTES.get(route)
        if handler is None:
            self._send_json(404, {"error": f"unknown path {route}", "paths": sorted(_ROUTES)})
            return
        try:
            handler(self, query)
        except MonitoringError as error:
            # Bad input is the client's to fix (400); a damaged or locked store is the
            # server's state, reported for what it is (503), never as a crash (500).
            self._send_json(400 if error.exit_code == 2 else 503, {"error": str(error)})
        except Exception as error:  # one bad request never takes the server down
            self._send_json(500, {"error": f"{type(error).__name__}: {error}"})

    def _authorized(self) -> bool:
        token = self.server.config.token
        if not token:
            return True
        if bearer_matches(self.headers.get("authorization", ""), token):
            return True
        # EventSource cannot send headers: the event stream alone takes ?token=.
        parts = urlsplit(self.path)
        given = parse_qs(parts.query).get("token", [""])[-1]
        return parts.path == "/api/alerts/stream" and same_secret(given, token)

    # -- routes -------------------------------------------------------------------

    def live(self, query: dict[str, str]) -> None:
        self._send_json(200, {"status": "live", "version": __version__})

    def ready(self, query: dict[str, str]) -> None:
        from assistant_monitoring.health.checks import check_database_sync

        settings = self.server.settings
        database = check_database_sync(
            settings.database_path, slow_ms=1e9, busy_timeout_ms=settings.database.busy_timeout_ms
        )
        store_ok = _store_usable(settings)
        ready = database.status.value != "unhealthy" and store_ok
        self._send_json(
            200 if ready else 503,
            {
                "status": "ready" if ready else "not ready",
                "database": database.message,
                "store": "usable" if store_ok else "unusable",
            },
        )

    def health(self, query: dict[str, str]) -> None:
        status, document = self.server.health.get()
        self._send_json(status, document, content_type="application/health+json")

    def metrics(self, query: dict[str, str]) -> None:
        from assistant_monitoring.metrics.exposition import (
            OPENMETRICS_CONTENT_TYPE,
            PROMETHEUS_CONTENT_TYPE,
        )

        openmetrics = "application/openmetrics-text" in self.headers.get("accept", "")
        body = self.server.exposition(openmetrics=openmetrics)
        kind = OPENMETRICS_CONTENT_TYPE if openmetrics else PROMETHEUS_CONTENT_TYPE
        self._send(200, body, kind)

    def json_api(self, query: dict[str, str]) -> None:
        route = urlsplit(self.path).path.rstrip("/")
        self._send_json(200, ENDPOINTS[route](self.server.settings, query))

    def dashboard(self, query: dict[str, str]) -> None:
        from importlib import resources

        page = resources.files("assistant_monitoring.server").joinpath("static/dashboard.html")
        self._send(200, page.read_bytes(), "text/html; charset=utf-8")

    def api_alerts_stream(self, query: dict[str, str]) -> None:
        """Server-sent events: one ``alert`` event per transition, a comment every 15 s."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-store")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        subscriber = self.server.alerts.subscribe()
        quiet = 0.0
        try:
            self.wfile.write(b": connected\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():
                try:
                    message = subscriber.get(timeout=1.0)
                except queue.Empty:
                    quiet += 1.0
                    if quiet >= 15:
                        quiet = 0.0
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                    continue
                data = json.dumps(message, default=str)
                self.wfile.write(f"event: alert\ndata: {data}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        finally:
            self.server.alerts.unsubscribe(subscriber)

    # -- writing -------------------------------------------------------------------

    def _send_json(
        self, status: int, document: dict[str, Any], *, content_type: str = "application/json"
    ) -> None:
        self._send(status, json.dumps(document, default=str).encode(), content_type)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        self.wfile.write(body)


_ROUTES: dict[str, Callable[[_Handler, dict[str, str]], None]] = {
    "/live": _Handler.live,
    "/ready": _Handler.ready,
    "/health": _Handler.health,
    "/metrics": _Handler.metrics,
    **dict.fromkeys(ENDPOINTS, _Handler.json_api),
    "/api/alerts/stream": _Handler.api_alerts_stream,
    "/dashboard": _Handler.dashboard,
}


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (``==`` tells an attacker how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries ``token`` (the scheme is case-insensitive)."""
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower() == "bearer" and same_secret(credentials.strip(), token)


def _store_usable(settings: Settings) -> bool:
    from assistant_monitoring.metrics.store import MetricsStore

    store = MetricsStore(settings.monitoring_db_path)
    try:
        store.connect().execute("SELECT 1").fetchone()
        return True
    except Exception:
        return False
    finally:
        store.close()
