"""Run ``monitor serve``: uvicorn on a socket we bind, the periodic work, a clean stop.

SIGTERM (what pm2, systemd and Docker send) and Ctrl-C stop it the same way:
uvicorn stops accepting, lets requests in flight finish for up to
``DRAIN_SECONDS`` (event streams end at their next tick), then this module waits for
the periodic job to finish the evaluation it is in, flushes the metrics, and
returns: the process exits 0, since stopping when asked is not a failure.

uvicorn's own log lines (start-up banners, "Invalid HTTP request received", a
client that reset its connection) are demoted to DEBUG: they are about clients, and
under pm2 a line per bad request would flood the production log. Its errors (an
exception escaping the application, which ours catches) stay errors.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from loguru import logger

from assistant_monitoring.server.app import MonitorApp, ServerConfig
from assistant_monitoring.server.protocol import LimitedHttpToolsProtocol
from assistant_monitoring.settings import Settings

DRAIN_SECONDS = 5  # keep below ecosystem.config.js's kill_timeout (8 s)
KEEP_ALIVE_SECONDS = 5
_PERIODIC_STOP_SECONDS = 10.0


class _ClientLogFilter(logging.Filter):
    """uvicorn's records below ERROR become DEBUG records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (raises OSError: the caller says which port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, whose signal handling ends in a clean return, not a re-raise."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has stopped (its exit code would be
        # 143); we stopped as asked, so the process exits 0.
        self._captured_signals.clear()


def serve(settings: Settings, config: ServerConfig, sock: socket.socket) -> int:
    """Serve on ``sock`` until SIGTERM or Ctrl-C; flush; return the requests served."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logging.getLogger(name).addFilter(_ClientLogFilter())
    monitor = MonitorApp(settings, config)
    LimitedHttpToolsProtocol.max_connections = config.max_connections
    server = _Server(
        uvicorn.Config(
            monitor.asgi,
            http=LimitedHttpToolsProtocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,  # ours is one JSON line at DEBUG (server/app.py)
            server_header=False,
            proxy_headers=False,
            limit_concurrency=config.max_connections,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=DRAIN_SECONDS,
        ),
        on_signal=monitor.stopping.set,
    )
    asyncio.run(_serve(monitor, server, sock))
    return monitor.requests_served


async def _serve(monitor: MonitorApp, server: _Server, sock: socket.socket) -> None:
    periodic = asyncio.create_task(_periodic(monitor))
    try:
        await server.serve(sockets=[sock])
    finally:
        monitor.stopping.set()
        # The evaluation under way finishes (an alert half-recorded is worse than a
        # late stop); the next one does not start.
        try:
            await asyncio.wait_for(periodic, _PERIODIC_STOP_SECONDS)
        except TimeoutError:
            logger.warning("the periodic health and alert evaluation did not stop in time")
        monitor.executor.shutdown(wait=False, cancel_futures=True)
        from assistant_monitoring.metrics.runtime import current_runtime

        runtime = current_runtime()
        if runtime is not None:
            runtime.flush()


async def _periodic(monitor: MonitorApp) -> None:
    """Health history and the local alert rules, every flush interval, in a worker thread.

    Health is recorded even when nobody probes /health; alert transitions also go to
    the event streams. A failure (a damaged store) is logged once, and its end once,
    not every few seconds for as long as it lasts.
    """
    from assistant_monitoring.alerts import evaluate_and_record

    interval = max(monitor.config.flush_interval, 1.0)
    loop = asyncio.get_running_loop()
    last_problem = ""
    next_at = time.monotonic() + interval
    while not monitor.stopping.is_set():
        await asyncio.sleep(min(0.2, max(0.0, next_at - time.monotonic())))
        if time.monotonic() < next_at:
            continue
        next_at = time.monotonic() + interval

        def publish(event: str, alert: Any) -> None:
            loop.call_soon_threadsafe(monitor.alerts.publish, event, alert)

        def evaluate() -> None:
            monitor.health_answer().result()
            evaluate_and_record(monitor.settings, extra=[publish])

        try:
            await asyncio.to_thread(evaluate)
        except Exception as error:
            if str(error) != last_problem:
                logger.warning(f"periodic health and alert evaluation failed: {error}")
            last_problem = str(error)
        else:
            if last_problem:
                logger.info("periodic health and alert evaluation works again")
            last_problem = ""
