"""``assistant monitor serve``: /health, /live, /ready, /metrics and the JSON API over HTTP."""

from __future__ import annotations

import ipaddress

import typer

from assistant_monitoring.cli.state import current_state

_SERVE_RETENTION_BUDGET_SECONDS = 2.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str | None = typer.Option(
        None,
        "--host",
        help="Address to bind (default MONITOR_HOST, 127.0.0.1; others need MONITOR_TOKEN).",
    ),
    port: int | None = typer.Option(
        None, "--port", "-p", min=0, max=65535, help="Port (default MONITOR_PORT, 9464)."
    ),
    cache_seconds: float = typer.Option(
        5.0, "--health-cache", min=0, help="Seconds a /health answer is reused."
    ),
) -> None:
    """Serve health, metrics and the JSON API over HTTP until SIGTERM (exit 0) or Ctrl-C (130).

    Paths: /live, /ready, /health (503 when unhealthy), /metrics (Prometheus text,
    OpenMetrics on request, gzip), /api/metrics?period=1h, /api/runs?status=failed&limit=5,
    /api/breakers, /api/timeseries, /api/alerts (+ /stream), /dashboard, and
    /openapi.json describing them. It also flushes metrics, samples memory and CPU,
    records health and applies retention every MONITOR_FLUSH_INTERVAL seconds.
    At most MONITOR_MAX_CONNECTIONS (512) connections at once: when full, slow heads,
    idle and slow-reading connections give way, and /live and /ready keep a reserve.
    It raises its open-file limit to what that needs (MAX + 320) where the hard limit
    allows. MONITOR_ACCESS_LOG=true logs one line per request (off by default).
    MONITOR_REUSE_PORT=true lets several processes share the port (pm2 runs two).

    Example: assistant -e production monitor serve --port 9464
    """
    from loguru import logger

    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.metrics.runtime import current_runtime
    from assistant_monitoring.server.app import ServerConfig
    from assistant_monitoring.server.run import bind, serve, url_of

    settings = current_state().start()
    monitoring = settings.monitoring
    chosen_host = host or monitoring.host
    token = monitoring.token.get_secret_value() if monitoring.token else None
    if not _is_loopback(chosen_host) and not token:
        named = "--host" if host else "MONITOR_HOST"
        raise UsageError(
            f"{named} {chosen_host} is not loopback: set MONITOR_TOKEN so that only clients "
            "with the bearer token can read health and metrics"
        )
    config = ServerConfig(
        host=chosen_host,
        port=monitoring.port if port is None else port,
        token=token,
        cache_seconds=cache_seconds,
        flush_interval=monitoring.flush_interval_seconds,
        max_connections=monitoring.max_connections,
    )
    try:
        sock = bind(config.host, config.port, reuse_port=monitoring.reuse_port)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port} ({error.strerror}): "
            "choose another --port or stop what uses it"
        ) from None
    runtime = current_runtime()
    if runtime is not None:
        if runtime.store is not None:
            # The long-lived process takes the larger share of a retention backlog.
            runtime.store.retention_budget_seconds = _SERVE_RETENTION_BUDGET_SECONDS
        runtime.start_periodic_flush(config.flush_interval)
    url = url_of(sock)
    logger.info(f"monitor serving on {url}")
    typer.echo(f"serving on {url} (Ctrl-C or SIGTERM stops)", err=True)
    stopped = serve(settings, config, sock)
    logger.info(f"monitor stopped ({stopped.requests} requests served)")
    if stopped.interrupted:
        raise typer.Exit(130)  # Ctrl-C, as every command (SIGTERM: 0)
