"""``assistant config show|check``: the effective settings, and whether they are valid."""

from __future__ import annotations

import json

import typer

from assistant_monitoring.cli.state import CliState, current_state

app = typer.Typer(
    help="Show and validate the settings of a profile.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_PROFILE_HELP = "Profile to read (default: the global --profile, ASSISTANT_ENV or development)."


@app.command("show")
def show(
    profile: str | None = typer.Option(None, "--profile", "-e", help=_PROFILE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Print the effective settings, where each value came from, secrets masked.

    Sources: 'default', 'profile default', the .env file's name, or 'environment'.

    Example: assistant -e production config show --json | jq .settings.LOG_LEVEL
    """
    from assistant_monitoring.settings.describe import describe_settings, settings_as_json

    state = current_state()
    loaded = state.load(profile)
    if as_json:
        typer.echo(json.dumps(settings_as_json(loaded), indent=2))
        return
    from rich.table import Table

    console = state.console()
    origin = str(loaded.env_file) if loaded.env_file else "no .env file, defaults and environment"
    console.print(f"[bold]Profile[/bold] {loaded.profile}  [dim]({origin})[/dim]")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Setting", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_column("Source", style="dim", no_wrap=True)
    group = None
    for row in describe_settings(loaded):
        if row.group != group:
            group = row.group
            table.add_row(f"[bold default]{group}[/]", "", "")
        table.add_row(f"  {row.env_name}", row.display, row.source)
    console.print(table)
    for warning in loaded.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command("check")
def check(
    profile: str | None = typer.Option(None, "--profile", "-e", help=_PROFILE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Validate a profile: exit 0 when valid, else list every problem and exit 2.

    Example: assistant config check --profile production
    """
    from assistant_monitoring.errors import MonitoringError, SettingsError

    state = current_state()
    try:
        loaded = state.load(profile)
    except MonitoringError as error:
        if not as_json:
            raise
        problems = error.problems if isinstance(error, SettingsError) else [str(error)]
        typer.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        raise typer.Exit(error.exit_code) from None
    if as_json:
        _log_outcome(state, loaded.profile, profile)
        document = {
            "valid": True,
            "profile": loaded.profile,
            "env_file": str(loaded.env_file) if loaded.env_file else None,
            "warnings": loaded.warnings,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    _log_outcome(state, loaded.profile, profile)
    console = state.console()
    origin = loaded.env_file.name if loaded.env_file else "defaults and environment"
    console.print(f"[green]✓[/green] profile '{loaded.profile}' is valid ({origin})")
    for warning in loaded.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _log_outcome(state: CliState, profile: str, requested: str | None) -> None:
    """Record a successful check in the log, when the log directory is usable.

    Only for the global profile (whose log directory this is); a check must report
    on the settings and never fail because, say, /var/lib/assistant is not writable.
    """
    from loguru import logger

    from assistant_monitoring.errors import LogDirectoryError

    if requested is not None and requested != state.profile:
        return
    try:
        state.start(metrics=False)
    except LogDirectoryError:
        return
    logger.info(f"settings valid for profile {profile}")
