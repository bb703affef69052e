"""``assistant monitor usage``: tokens, cost, cache savings and budgets, by period or key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from assistant_monitoring.cli.state import current_state

if TYPE_CHECKING:
    from assistant_monitoring.settings import Settings

_GROUP_HELP = (
    "daily (default), weekly, monthly, hourly, session, model, conversation or repo "
    "(the git repository a run was started in)."
)


def usage(
    group: str = typer.Argument("daily", help=_GROUP_HELP, metavar="[GROUP]"),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Start: today, yesterday, this-week, last-week, this-month, last-month, "
        "a date (2026-11-01), a duration (7d) or an ISO time. Default: 30 days "
        "(hourly: today; weekly: 12 weeks; monthly: a year).",
    ),
    until: str | None = typer.Option(
        None, "--until", help="End (default now); a date or period name means its end."
    ),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="IANA time zone for day boundaries (Europe/Paris, UTC). Default: "
        "MONITOR_TIMEZONE, else this machine's zone.",
    ),
    model: str | None = typer.Option(None, "--model", help="Only models whose name contains this."),
    provider: str | None = typer.Option(None, "--provider", help="Only anthropic or openai."),
    breakdown: bool = typer.Option(
        False, "--breakdown", "-b", help="A line per model in each row."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        "-n",
        help="At most this many rows, costliest first (session and conversation: 50; 0: all).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (a line per row, then total)."),
    do_reprice: bool = typer.Option(
        False,
        "--reprice",
        help="Recompute the cost of past runs with the current price table "
        "(MONITOR_PRICES_FILE) and say what changed, instead of the report.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --reprice: say what would change, write nothing."
    ),
) -> None:
    """Runs, tokens by type, cost, cache savings and errors per day, week, model...

    Tokens: input (full price), output (reasoning included; the reasoning column says
    how many), cache read, cache writes of 5 minutes and 1 hour. Cost is what each
    run was priced at; "unpriced" models are never counted as $0. "saved" is what the
    cached tokens would have cost as plain input, minus what they cost. Budgets
    (MONITOR_DAILY_BUDGET_USD, MONITOR_MONTHLY_BUDGET_USD) show spent, left, the
    end-of-period projection and when they run out.

    Examples:

      assistant monitor usage

      assistant monitor usage hourly --since today --tz Europe/Paris

      assistant monitor usage monthly --breakdown --csv > usage.csv

      assistant monitor usage repo --since this-month --json

      assistant monitor usage --reprice --dry-run
    """
    from assistant_monitoring.errors import UsageError

    if as_json and as_csv:
        raise UsageError("--json and --csv: choose one")
    if dry_run and not do_reprice:
        raise UsageError("--dry-run: only with --reprice")
    state = current_state()
    settings = state.load().settings
    if do_reprice:
        _reprice(settings, dry_run=dry_run, as_json=as_json)
        return

    from assistant_monitoring.usage.service import usage_report

    answer = usage_report(
        settings,
        group.lower(),
        since=since,
        until=until,
        tz=tz,
        model=model,
        provider=provider,
        limit=limit,
    )
    if as_json:
        # allow_nan=False: never a bare NaN (invalid JSON); usage_report refused
        # non-finite figures already, this is the last guard.
        typer.echo(json.dumps(answer.as_json(breakdown=breakdown), indent=2, allow_nan=False))
        return
    if as_csv:
        from assistant_monitoring.cli.usage_view import usage_csv

        typer.echo(usage_csv(answer, breakdown=breakdown), nl=False)
        return
    from assistant_monitoring.cli.usage_view import render_usage

    render_usage(answer, state.console(), breakdown=breakdown)


def _reprice(settings: Settings, *, dry_run: bool, as_json: bool) -> None:
    from assistant_monitoring.metrics.store import MetricsStore
    from assistant_monitoring.pricing import PriceTable
    from assistant_monitoring.usage.reprice import RepriceResult, reprice

    path = settings.monitoring_db_path
    prices = PriceTable.with_overrides(settings.monitoring.prices_file)
    if path.exists():
        store = MetricsStore(path)
        try:
            result = reprice(store, prices, dry_run=dry_run)
        finally:
            store.close()
    else:
        result = RepriceResult(prices.version, dry_run)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2, allow_nan=False))
        return
    verb = "Would reprice" if dry_run else "Repriced"
    if result.rollup_not_finite:
        typer.echo(
            f"{verb} {result.rollup_not_finite} usage rollup rows whose cost was not a "
            "finite number."
        )
    if not result.changes:
        typer.echo(f"Every priced run already uses price table {result.version}: nothing to do.")
        return
    typer.echo(f"{verb} {result.runs} runs with price table {result.version}:")
    for change in result.changes:
        parts = [] if change.cost_before_usd is None else [f"${change.cost_before_usd:.4f}"]
        if change.not_finite_before:
            parts.append(f"{change.not_finite_before} not a finite number")
        before = " + ".join(parts) or "unpriced"
        after = "unpriced" if change.cost_after_usd is None else f"${change.cost_after_usd:.4f}"
        typer.echo(f"  {change.provider}/{change.model}: {change.runs} runs, {before} -> {after}")
