"""``assistant monitor dashboard``: health, activity, models and failures on one screen."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

import typer

from assistant_monitoring.cli.state import current_state

if TYPE_CHECKING:
    from rich.console import RenderableType


def _watch_for_q(stop: threading.Event) -> None:
    """Set ``stop`` when q is pressed (cbreak mode; the terminal is restored after)."""
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready and sys.stdin.read(1).lower() == "q":
                stop.set()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def dashboard(
    period: str = typer.Option("60m", "--period", "-p", help="Window shown: 15m, 60m, 24h..."),
    refresh: float = typer.Option(2.0, "--refresh", "-r", min=0.2, help="Seconds between frames."),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit (scripts, tests)."),
    health_every: float = typer.Option(
        30.0, "--health-every", min=1, help="Seconds between health checks (they call the LLM API)."
    ),
    web: bool = typer.Option(
        False, "--web", help="Serve the web dashboard (as `monitor serve`) and open the browser."
    ),
) -> None:
    """Everything at a glance, live: health, breakers, runs per minute, error ratio,
    p50/p95 latency, tokens and cost per model, recent failed runs and error lines.

    It reads what every assistant process writes, so other processes' activity shows
    up as it lands. q or Ctrl-C quits and restores the terminal.

    Example: assistant monitor dashboard --period 15m --refresh 1
    """
    from rich.live import Live

    from assistant_monitoring.cli.dashboard_view import render_frame
    from assistant_monitoring.dashboard import HealthProbe, take_snapshot
    from assistant_monitoring.timeparse import parse_duration

    parse_duration(period, option="--period")  # a bad period fails before the screen opens
    if web:
        _serve_web()
        return
    state = current_state()
    settings = state.load().settings
    console = state.console()
    probe = HealthProbe(settings, health_every)

    def frame() -> RenderableType:
        snapshot = take_snapshot(settings, period=period, health=probe)
        return render_frame(
            snapshot, width=console.width, height=console.height, profile=settings.profile
        )

    if once:
        console.print(frame(), height=max(console.height, 24))
        return
    stop = threading.Event()
    if sys.stdin.isatty():
        threading.Thread(target=_watch_for_q, args=(stop,), daemon=True).start()
    try:
        with Live(frame(), console=console, screen=True, auto_refresh=False) as live:
            while not stop.wait(refresh):
                live.update(frame(), refresh=True)
    finally:
        stop.set()
        time.sleep(0.25)  # let the key reader restore the terminal


def _serve_web() -> None:
    """`monitor serve` on loopback, with the browser opened on /dashboard."""
    import webbrowser

    from assistant_monitoring.cli.serve_cmd import serve

    settings = current_state().load().settings
    url = f"http://127.0.0.1:{settings.monitoring.port}/dashboard"
    typer.echo(f"web dashboard: {url}", err=True)
    threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    serve(host=None, port=None, cache_seconds=5.0)
