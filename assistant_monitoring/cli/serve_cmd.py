"""``assistant monitor serve``: /health, /live, /ready, /metrics and the JSON API over HTTP."""

from __future__ import annotations

import ipaddress
import threading

import typer

from assistant_monitoring.cli.state import current_state

_DRAIN_SECONDS = 5.0  # keep below ecosystem.config.js's kill_timeout


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
    """Serve health, metrics and the JSON API over HTTP until SIGTERM or Ctrl-C.

    Paths: /live, /ready, /health (503 when unhealthy), /metrics (Prometheus text,
    OpenMetrics on request), /api/metrics?period=1h, /api/runs?status=failed&limit=5,
    /api/breakers. It also flushes metrics, samples memory and CPU, records health
    and applies retention every MONITOR_FLUSH_INTERVAL seconds.

    Example: assistant -e production monitor serve --port 9464
    """
    from loguru import logger

    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.metrics.runtime import current_runtime
    from assistant_monitoring.server import MonitorServer, ServerConfig

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
    )
    try:
        server = MonitorServer(settings, config)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port} ({error.strerror}): "
            "choose another --port or stop what uses it"
        ) from None
    runtime = current_runtime()
    if runtime is not None:
        runtime.start_periodic_flush(config.flush_interval)
    stop = threading.Event()

    def periodic() -> None:
        # Health history for the dashboards, even when nobody probes /health, and
        # the local alert rules, whose transitions go to the event streams too.
        from assistant_monitoring.alerts import evaluate_and_record

        last_problem = ""
        while not stop.wait(max(config.flush_interval, 1.0)):
            try:
                server.health.get()
                evaluate_and_record(settings, extra=[server.alerts.publish])
            except Exception as error:
                # Said once, not every few seconds for as long as it lasts (a damaged
                # store would otherwise fill the log pm2 keeps).
                if str(error) != last_problem:
                    logger.warning(f"periodic health and alert evaluation failed: {error}")
                last_problem = str(error)
            else:
                if last_problem:
                    logger.info("periodic health and alert evaluation works again")
                last_problem = ""

    threading.Thread(target=periodic, name="periodic", daemon=True).start()
    logger.info(f"monitor serving on {server.url}")
    typer.echo(f"serving on {server.url} (Ctrl-C or SIGTERM stops)", err=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        stop.set()
        left = server.drain(_DRAIN_SECONDS)
        logger.info(f"monitor stopped ({server.requests_served} requests served, {left} cut off)")
