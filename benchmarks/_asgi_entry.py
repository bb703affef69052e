"""``monitor serve``'s application on another ASGI server: the entry of ``bench_servers.py``.

Not a benchmark itself. ``app()`` builds ``MonitorApp(settings, ServerConfig(...)).asgi``
from the environment as ``assistant monitor serve`` does (settings loaded, logging
configured, the ``ServerConfig`` fields taken from the same settings), without the
metrics runtime and the periodic job (flush, health, alerts, retention every 5 s),
which ``server/run.py`` adds around the app and which are not the HTTP server's.
Run as a script it serves that app on one of three servers, through their public,
documented settings only, and never returns (SIGTERM or SIGKILL of its process group
stops it)::

    python benchmarks/_asgi_entry.py uvicorn|granian|hypercorn --port P

The limits each is given are the same numbers ``monitor serve`` uses where the
server has the setting (``SETTINGS``): a request head within 10 s, at most 64 KiB of
head, at most 512 connections (MONITOR_MAX_CONNECTIONS' default), idle keep-alive
connections closed after 5 s, a listen backlog of 1024.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

HOST = "127.0.0.1"
HEAD_TIMEOUT_S = 10
HEAD_MAX_BYTES = 64 * 1024
MAX_CONNECTIONS = 512
KEEP_ALIVE_S = 5
BACKLOG = 1024
SERVERS = ("uvicorn", "granian", "hypercorn")

# What each server is given (reported by bench_servers.py), by its own setting names.
SETTINGS: dict[str, dict[str, Any]] = {
    "uvicorn": {
        "http": "httptools",
        "timeout_keep_alive": KEEP_ALIVE_S,
        "limit_concurrency": MAX_CONNECTIONS,
        "backlog": BACKLOG,
        "ws": "none",
        "lifespan": "off",
        "access_log": False,
    },
    "granian": {
        "interface": "asgi",
        "http": "1",
        "workers": 1,
        "websockets": False,
        "backlog": BACKLOG,
        "backpressure": MAX_CONNECTIONS,
        "http1_settings.header_read_timeout": HEAD_TIMEOUT_S * 1000,  # milliseconds
        "http1_settings.max_buffer_size": HEAD_MAX_BYTES,
        "log_access": False,
    },
    "hypercorn": {
        "worker_class": "asyncio (h11)",
        "keep_alive_timeout": KEEP_ALIVE_S,
        "read_timeout": HEAD_TIMEOUT_S,
        "h11_max_incomplete_size": HEAD_MAX_BYTES,
        "backlog": BACKLOG,
        "accesslog": None,
    },
}


def app() -> Any:
    """The application ``monitor serve`` serves, built from this process's environment."""
    from assistant_monitoring.cli.state import current_state
    from assistant_monitoring.server.app import MonitorApp, ServerConfig

    settings = current_state().start(metrics=False)
    monitoring = settings.monitoring
    token = monitoring.token.get_secret_value() if monitoring.token else None
    config = ServerConfig(
        host=HOST,
        port=monitoring.port,
        token=token,
        cache_seconds=5.0,
        flush_interval=monitoring.flush_interval_seconds,
        max_connections=monitoring.max_connections,
    )
    return MonitorApp(settings, config).asgi


def serve_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(
        app(),
        host=HOST,
        port=port,
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        backlog=BACKLOG,
    )


def serve_granian(port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    # The worker process (forked) imports this module by name and calls app().
    Granian(
        "_asgi_entry:app",
        address=HOST,
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        backpressure=MAX_CONNECTIONS,
        http1_settings=HTTP1Settings(
            header_read_timeout=HEAD_TIMEOUT_S * 1000, max_buffer_size=HEAD_MAX_BYTES
        ),
        log_access=False,
        factory=True,
    ).serve()


def serve_hypercorn(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.read_timeout = HEAD_TIMEOUT_S
    config.h11_max_incomplete_size = HEAD_MAX_BYTES
    config.backlog = BACKLOG
    config.accesslog = None
    asyncio.run(serve(app(), config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    runners = {"uvicorn": serve_uvicorn, "granian": serve_granian, "hypercorn": serve_hypercorn}
    runners[args.server](args.port)


if __name__ == "__main__":
    main()
