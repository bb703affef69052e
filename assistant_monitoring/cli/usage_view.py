"""``monitor usage`` on a terminal (a rich table with a bar per row) and as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, tzinfo

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from assistant_monitoring.usage.budget import BudgetStatus
from assistant_monitoring.usage.report import Totals
from assistant_monitoring.usage.service import UsageAnswer
from assistant_monitoring.zones import zone_name

_BAR_WIDTH = 24
_MIN_BAR = 6
_HEADINGS = {
    "hourly": "hour",
    "daily": "day",
    "weekly": "week of",
    "monthly": "month",
    "session": "session",
    "model": "provider/model",
    "conversation": "conversation",
    "repo": "repository",
}
CSV_FIELDS = (
    "key",
    "provider",
    "model",
    "runs",
    "errors",
    "interrupted",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_runs",
    "cache_savings_usd",
)


def fmt_tokens(value: int) -> str:
    """12345 -> '12.3k', 1234567 -> '1.23M'."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:,}"


def fmt_money(value: float) -> str:
    """$1,234, $12.35, $0.0123: four decimals below a dollar, so small costs show."""
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    return f"${value:.2f}" if abs(value) >= 1 else f"${value:.4f}"


def fmt_cost(totals: Totals) -> str:
    """'$1.2345', 'unpriced', or '$1.23+?' when some of the runs are unpriced."""
    cost = totals.cost_usd
    if cost is None:
        return "unpriced"
    text = fmt_money(cost)
    return f"{text}+?" if totals.unpriced_runs else text


# The table's columns: (heading, non-zero when, cell). A column that is zero on every
# line is left out, unless it is one of _ALWAYS.
_COLUMNS: tuple[tuple[str, Callable[[Totals], float], Callable[[Totals], str]], ...] = (
    ("runs", lambda t: t.runs, lambda t: f"{t.runs:,}"),
    ("errors", lambda t: t.errors, lambda t: f"{t.errors:,}"),
    ("input", lambda t: t.input_tokens, lambda t: fmt_tokens(t.input_tokens)),
    ("output", lambda t: t.output_tokens, lambda t: fmt_tokens(t.output_tokens)),
    ("reasoning", lambda t: t.reasoning_tokens, lambda t: fmt_tokens(t.reasoning_tokens)),
    ("cache read", lambda t: t.cache_read_tokens, lambda t: fmt_tokens(t.cache_read_tokens)),
    ("write 5m", lambda t: t.cache_write_5m_tokens, lambda t: fmt_tokens(t.cache_write_5m_tokens)),
    ("write 1h", lambda t: t.cache_write_1h_tokens, lambda t: fmt_tokens(t.cache_write_1h_tokens)),
    ("cost", lambda t: 1, fmt_cost),
    ("saved", lambda t: abs(t.cache_savings_usd), lambda t: fmt_money(t.cache_savings_usd)),
)
_ALWAYS = ("runs", "errors", "input", "output", "cost")
_DROP_ORDER = ("reasoning", "write 1h", "write 5m", "saved", "cache read", "errors")


def _bar(value: float, largest: float, width: int) -> Text:
    if largest <= 0 or value <= 0:
        return Text("")
    eighths = max(1, round(width * 8 * value / largest))
    full, part = divmod(eighths, 8)
    return Text("█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else ""), style="cyan")


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _measure(totals: Totals, by_cost: bool) -> float:
    return (totals.cost_usd or 0.0) if by_cost else float(totals.runs)


def render_usage(answer: UsageAnswer, console: Console, *, breakdown: bool) -> None:
    """The report as a table with a bar of cost (or of runs, where nothing is priced)
    per row, the totals as its footer, then the budgets. Token columns that are zero
    throughout are left out and the bar takes the width left, so it fits 80 columns."""
    report = answer.report
    zone = report.zone
    heading = _HEADINGS[report.group]
    since = datetime.fromtimestamp(report.window.start, zone)
    until = datetime.fromtimestamp(report.window.end, zone)
    filters = "".join(f"  {name} ~ {escape(value)}" for name, value in report.filters.items())
    console.print(
        f"[bold]Usage per {heading}[/bold]  {since:%Y-%m-%d %H:%M} to "
        f"{until:%Y-%m-%d %H:%M} {zone_name(zone)}{filters}"
    )
    if not answer.has_store or not report.rows:
        console.print("No runs in this window." + ("" if answer.has_store else " (no store yet)"))
        _render_budgets(answer.budgets, console, zone)
        return
    lines: list[tuple[str, Totals, bool]] = []  # (label, totals, is a model line)
    for row in report.rows:
        lines.append((row.label, row.totals, False))
        if breakdown:
            for usage in sorted(row.models.values(), key=lambda m: (m.provider, m.model)):
                name = f"  {usage.provider}/{usage.model}" if usage.model else "  (no model)"
                lines.append((name, usage.totals, True))
    columns = [
        column
        for column in _COLUMNS
        if column[0] in _ALWAYS or any(column[1](totals) for _, totals, _ in lines)
    ]
    label_width = max(len("total"), len(heading), *(len(label) for label, _, _ in lines))
    dropped: list[str] = []
    while True:
        cells = [[column[2](totals) for column in columns] for _, totals, _ in lines]
        footer = [column[2](report.totals) for column in columns]
        widths = [
            max(len(column[0]), len(footer[i]), *(len(line[i]) for line in cells))
            for i, column in enumerate(columns)
        ]
        # Two spaces between columns (one of padding, SIMPLE_HEAD's blank divider).
        room = console.width - label_width - sum(widths) - 2 * (len(columns) + 1) - 1
        droppable = [c for c in columns if c[0] in _DROP_ORDER]
        if room >= 0 or not droppable:
            break
        # Too wide for the terminal: leave out the least needed column, and say so.
        victim = min(droppable, key=lambda c: _DROP_ORDER.index(c[0]))
        columns.remove(victim)
        dropped.append(victim[0])
    bar_width = min(_BAR_WIDTH, room)
    by_cost = any((totals.cost_usd or 0) > 0 for _, totals, _ in lines)
    largest = max(_measure(row.totals, by_cost) for row in report.rows)
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="dim",
        pad_edge=False,
        show_footer=True,
        padding=(0, 0, 0, 1),
    )
    table.add_column(heading, "total", no_wrap=True)
    for column, total in zip(columns, footer, strict=True):
        table.add_column(column[0], total, justify="right", no_wrap=True)
    with_bar = bar_width >= _MIN_BAR
    if with_bar:
        table.add_column(
            "cost" if by_cost else "runs", no_wrap=True, width=bar_width, overflow="crop"
        )
    for (label, totals, is_model), values in zip(lines, cells, strict=True):
        bar = _bar(0 if is_model else _measure(totals, by_cost), largest, bar_width - 1)
        # Text, not str: a label is user data (a repo, a session id, a server's model
        # name), and rich would read "[...]" in a str as markup.
        table.add_row(
            Text(label), *values, *([bar] if with_bar else []), style="dim" if is_model else None
        )
    console.print(table)
    if report.totals.unpriced_runs:
        console.print(
            f"[dim]+? : {_runs(report.totals.unpriced_runs)} of unpriced models not in the "
            "cost (price them in MONITOR_PRICES_FILE, then --reprice)[/dim]"
        )
    if dropped:
        console.print(f"[dim]not shown for the width: {', '.join(dropped)} (--json has all)[/dim]")
    if report.hidden_rows:
        console.print(f"[dim]{report.hidden_rows} more rows: --limit 0 shows all[/dim]")
    _render_budgets(answer.budgets, console, zone)


def _render_budgets(budgets: list[BudgetStatus], console: Console, zone: tzinfo) -> None:
    for budget in budgets:
        name = "Today" if budget.period == "day" else "This month"
        percent = 100 * budget.spent_usd / budget.budget_usd
        style = "red" if percent >= 95 else "yellow" if percent >= 80 else "green"
        projected = f"projected {fmt_money(budget.projected_usd)}"
        if not budget.projection_reliable:
            projected += " (early: few hours of data)"
        out = budget.runs_out_at
        if budget.remaining_usd <= 0:
            when = "[red]budget spent[/red]"
        elif out is not None:
            when = f"[yellow]runs out {datetime.fromtimestamp(out, zone):%Y-%m-%d %H:%M}[/yellow]"
        else:
            when = "lasts the period at this rate"
        unpriced = f", {_runs(budget.unpriced_runs)} unpriced" if budget.unpriced_runs else ""
        console.print(
            f"{name}: [{style}]{fmt_money(budget.spent_usd)} of ${budget.budget_usd:g} "
            f"({percent:.0f}%)[/{style}], {fmt_money(max(0.0, budget.remaining_usd))} left, "
            f"{projected}, {when}{unpriced}"
        )


def usage_csv(answer: UsageAnswer, *, breakdown: bool) -> str:
    """The report as CSV: one line per row (and per model with ``breakdown``), then
    a ``total`` line. Costs are plain numbers; an unpriced cost is empty. Text from
    user data is made inert for spreadsheets (see :func:`_cell`)."""
    buffer = io.StringIO()
    # CRLF, as RFC 4180 has it, and because Python 3.11's writer quotes a cell only
    # for the terminator's own characters: with "\n", a CR inside a repo name would
    # be written bare and split the row for every reader.
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    zone = answer.report.zone
    for row in answer.report.rows:
        writer.writerow(_csv_line(row.label, "", "", row.totals, zone))
        if breakdown:
            for usage in sorted(row.models.values(), key=lambda m: (m.provider, m.model)):
                writer.writerow(
                    _csv_line(row.label, usage.provider, usage.model, usage.totals, zone)
                )
    writer.writerow(_csv_line("total", "", "", answer.report.totals, zone))
    return buffer.getvalue()


def _csv_line(
    key: str, provider: str, model: str, totals: Totals, zone: tzinfo
) -> dict[str, object]:
    values = totals.as_json(zone)
    line: dict[str, object] = {name: values.get(name, "") for name in CSV_FIELDS}
    line["key"], line["provider"], line["model"] = _cell(key), _cell(provider), _cell(model)
    line["cost_usd"] = "" if values["cost_usd"] is None else values["cost_usd"]
    return line


_FORMULA_STARTS = ("=", "+", "-", "@")
_CONTROL_STARTS = ("\t", "\r", "\n")


def _cell(text: str) -> str:
    """Text a spreadsheet would run as a formula, made inert with a leading quote.

    Keys and model names come from user data (a repository's folder name, a session
    id, the model a server names). Following OWASP's CSV-injection advice, a cell is
    escaped when its first character is a tab, CR or newline, or its first
    non-blank character starts a formula (``=``, ``+``, ``-``, ``@``): spreadsheets
    skip leading blanks, so `` =1+1`` is a formula too. Numbers we write ourselves
    (negative savings) never come through here, so they stay numbers.
    """
    if text[:1] in _CONTROL_STARTS or text.lstrip()[:1] in _FORMULA_STARTS:
        return "'" + text
    return text
