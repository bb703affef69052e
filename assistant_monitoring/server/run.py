"""Run ``monitor serve``: uvicorn on a socket we bind, the periodic work, a clean stop.

SIGTERM (what pm2, systemd and Docker send) and Ctrl-C stop it the same way:
uvicorn stops accepting, lets requests in flight finish for up to
``DRAIN_SECONDS`` (event streams end at their next tick), then this module waits for
the periodic job to finish the evaluation it is in, flushes the metrics, and
returns: the process exits 0 after SIGTERM, since stopping when asked is not a
failure, and 130 after Ctrl-C, as every command does (CONVENTIONS.md).

uvicorn's own log lines (start-up banners, "Invalid HTTP request received", a
client that reset its connection) are demoted to DEBUG: they are about clients, and
under pm2 a line per bad request would flood the production log. Its errors (an
exception escaping the application, which ours catches) stay errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn
from loguru import logger

from assistant_monitoring.server.app import MonitorApp, ServerConfig
from assistant_monitoring.server.guard import (
    ACCEPT_BACKLOG,
    LISTEN_QUEUE,
    ConnectionBook,
    fit_descriptor_budget,
    guarded_protocol,
    quiet_accept_errors,
)
from assistant_monitoring.server.periodic import run_periodic
from assistant_monitoring.settings import Settings

DRAIN_SECONDS = 5  # keep below ecosystem.config.js's kill_timeout (8 s)
KEEP_ALIVE_SECONDS = 5
# Draining (5 s) plus the evaluation under way (2 s) plus the flush stay within
# ecosystem.config.js's kill_timeout (8 s): pm2 never has to SIGKILL a clean stop.
_PERIODIC_STOP_SECONDS = 2.0


class _ClientLogFilter(logging.Filter):
    """uvicorn's records below ERROR become DEBUG records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket (raises OSError: the caller says which port is taken).

    ``reuse_port`` (MONITOR_REUSE_PORT) lets several processes listen on one port, the
    kernel spreading connections between them: how pm2's two instances share it.
    Off by default, so that a second server started by mistake fails loudly.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says
    # TCP, and uvicorn writes a response's head and body separately, so without it
    # every answer after the first on a keep-alive connection waited ~40 ms for the
    # client's delayed ACK (1,130 req/s at 50 connections, whatever the path).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(ACCEPT_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, telling us first when a signal asks it to stop."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal(sig)
        super().handle_exit(sig, frame)


@dataclass
class Stopped:
    """How a run of the server ended."""

    requests: int
    interrupted: bool  # by Ctrl-C (SIGINT), where the CLI's convention is exit 130


def serve(settings: Settings, config: ServerConfig, sock: socket.socket) -> Stopped:
    """Serve on ``sock`` until SIGTERM or Ctrl-C; flush; say how it ended."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logging.getLogger(name).addFilter(_ClientLogFilter())
    # Our stdlib intercept leaves the root logger at level 0, which uvicorn reads as
    # TRACE: it would then wrap the app in its message logger and log every
    # connection made and lost, costing every request.
    logging.getLogger("uvicorn").setLevel(logging.INFO)
    budget = fit_descriptor_budget(config.max_connections)
    if budget.raised_from is not None:
        logger.info(f"raised the open-file limit from {budget.raised_from} to {budget.limit}")
    if budget.warning:
        logger.warning(budget.warning)
    book = ConnectionBook(budget.max_connections)
    monitor = MonitorApp(settings, config, connections=book)
    stopped_by: list[int] = []

    def on_signal(sig: int) -> None:
        # A signal handler: it runs between two bytecodes of whatever the loop was
        # doing, so the book is told through the loop.
        stopped_by.append(sig)
        monitor.stopping.set()
        loop.call_soon_threadsafe(book.stop, loop, DRAIN_SECONDS)

    server = _Server(
        uvicorn.Config(
            monitor.asgi,
            http=guarded_protocol(book),
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,  # ours is MONITOR_ACCESS_LOG (server/app.py)
            server_header=False,
            proxy_headers=False,
            backlog=ACCEPT_BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=DRAIN_SECONDS,
        ),
        on_signal=on_signal,
    )
    runner = asyncio.Runner()
    loop = runner.get_loop()

    def outside_uvicorn(sig: int, frame: FrameType | None) -> None:
        # Before uvicorn takes the signals (while it starts), a signal stops it as its
        # own handler would. After it gives them back, it re-raises the one that
        # stopped it: already acted upon. We stopped as asked, so the process exits 0
        # (130 after Ctrl-C, by the CLI's convention), not by the re-raised signal.
        if not stopped_by:
            server.handle_exit(sig, frame)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, outside_uvicorn) for sig in signals}
    try:
        runner.run(_serve(monitor, server, sock, book))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runner.close()
    return Stopped(monitor.requests_served, signal.SIGINT in stopped_by[:1])


async def _once_listening(server: uvicorn.Server, sock: socket.socket) -> None:
    """Once uvicorn listens: lengthen the kernel's queue of connections, and tell pm2.

    asyncio accepts as many connections per wake-up as the backlog uvicorn gave it
    (``ACCEPT_BACKLOG``, in the descriptor budget) and set that as the listen queue:
    ``listen()`` again makes only the kernel's queue longer (LISTEN_QUEUE), so that
    under a flood a probe waits in line instead of having its SYN dropped.

    pm2 gives the processes it forks a Node IPC channel (``NODE_CHANNEL_FD``), where a
    message is one JSON value per line; ``"ready"`` is what Node's ``process.send('ready')``
    writes. During ``pm2 reload`` it waits for it before stopping the next instance
    (``wait_ready`` in ecosystem.config.js).
    """
    while not server.started:
        await asyncio.sleep(0.05)
    with contextlib.suppress(OSError):
        sock.listen(LISTEN_QUEUE)
    channel = os.environ.get("NODE_CHANNEL_FD", "")
    if not channel.isdigit():
        return
    try:
        os.write(int(channel), b'"ready"\n')
    except OSError as error:
        logger.debug(f"could not tell pm2 this process is ready: {error}")


async def _serve(
    monitor: MonitorApp, server: _Server, sock: socket.socket, book: ConnectionBook
) -> None:
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop, book)
    book.watch_unsent(loop)
    periodic = asyncio.create_task(run_periodic(monitor))
    ready = asyncio.create_task(_once_listening(server, sock))
    try:
        await server.serve(sockets=[sock])
    finally:
        monitor.stopping.set()
        ready.cancel()
        # The evaluation under way finishes (an alert half-recorded is worse than a
        # late stop); the next one does not start.
        try:
            await asyncio.wait_for(periodic, _PERIODIC_STOP_SECONDS)
        except TimeoutError:
            # Its thread is a daemon: the process exits anyway, and the exit releases
            # the evaluator lock (released earlier, another process could evaluate
            # beside a half-done evaluation).
            logger.warning(
                "stopping with a health and alert evaluation still under way "
                "(a slow webhook or a locked store?)"
            )
        monitor.executor.shutdown(wait=False, cancel_futures=True)
        monitor.probes.shutdown(wait=False, cancel_futures=True)
        from assistant_monitoring.metrics.runtime import current_runtime

        runtime = current_runtime()
        if runtime is not None:
            runtime.flush()
        book.summarise()  # what the last minute refused, if anything
