"""``monitor usage --reprice``: recompute the recorded cost of past runs with today's table.

For when prices change, or an unpriced model gets a price in MONITOR_PRICES_FILE.
Each run's cost is its own token counts times the current price of its model (the
same :meth:`ModelPrice.cost` the live path uses, as one SQL expression); its
``price_version`` becomes the table's. A model that lost its price goes back to
unpriced (cost NULL), never to $0. Only runs priced with another version (or not at
all) are touched. The usage rollup is repriced from its token sums (rows of runs
already pruned included), so reports and budgets follow. The metric store's cost
counters are not rewritten: they are Prometheus counters, and what a scrape already
saw cannot be taken back.

All or nothing: the table is checked first (every price finite and within
:data:`MAX_PRICE_USD_PER_MTOK`, so no cost written can be ``inf`` or ``NaN``, which
SQLite would store as NULL and the rollup refuse), then the runs and the rollup are
rewritten in ONE transaction. A failure or a kill at any point leaves both exactly as
they were (SQLite rolls the transaction back), and a rerun does the whole job. The
price of that: ``ask`` processes finishing meanwhile wait for the write lock (up to
DATABASE_BUSY_TIMEOUT) while it runs, about a second per 200,000 runs to reprice.

Test hook (``killpoints``): with ``ASSISTANT_TEST_KILL_AT=reprice:k`` in the
environment, the process kills itself with SIGKILL right after step ``k``: 1 is "the
write transaction is open and the stale runs are read", then one step per UPDATE
(each model's runs, then each model of the rollup), then one after COMMIT.
``reprice:k:TERM`` or ``reprice:k:INT`` sends that signal instead (the
kill-at-every-step tests, tests/test_usage_bad_day.py).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import astuple, dataclass, field
from typing import Any

from assistant_monitoring.errors import UsageError, shown
from assistant_monitoring.killpoints import reached
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.pricing import (
    MAX_PRICE_USD_PER_MTOK,
    PRICE_NAMES,
    ModelPrice,
    PriceTable,
)
from assistant_monitoring.rollup import BILLED_TOKENS

_STALE = f"({BILLED_TOKENS}) > 0 AND price_version IS NOT ?"
# The largest finite double: a stored cost beyond it is +-inf (NaN comes back as NULL).
_FINITE = "abs(cost_usd) <= 1.7976931348623157e308"


@dataclass
class ModelChange:
    """What repricing did to one model's runs."""

    provider: str
    model: str
    runs: int = 0
    cost_before_usd: float | None = None  # None: they were all unpriced (or not finite)
    cost_after_usd: float | None = None  # None: the model has no price now
    # Runs whose stored cost was not a finite number (an older version's absurd
    # price): left out of cost_before_usd, which JSON could not carry otherwise.
    not_finite_before: int = 0

    def as_json(self) -> dict[str, Any]:
        """The change as ``--reprice --json`` prints it."""
        return {
            "provider": self.provider,
            "model": self.model,
            "runs": self.runs,
            "cost_before_usd": _rounded(self.cost_before_usd),
            "cost_after_usd": _rounded(self.cost_after_usd),
            "not_finite_before": self.not_finite_before,
        }


@dataclass
class RepriceResult:
    """What ``--reprice`` changed (or, with ``dry_run``, would change)."""

    version: str
    dry_run: bool
    changes: list[ModelChange] = field(default_factory=list)
    # Rollup rows whose cost was not finite, even where their runs are pruned.
    rollup_not_finite: int = 0

    @property
    def runs(self) -> int:
        """Runs repriced."""
        return sum(change.runs for change in self.changes)

    def as_json(self) -> dict[str, Any]:
        """The ``--reprice --json`` document."""
        return {
            "price_version": self.version,
            "dry_run": self.dry_run,
            "runs": self.runs,
            "models": [change.as_json() for change in self.changes],
            "rollup_rows_not_finite_before": self.rollup_not_finite,
        }


def reprice(store: MetricsStore, prices: PriceTable, *, dry_run: bool = False) -> RepriceResult:
    """Reprice every run not priced with ``prices.version``, and the usage rollup, in
    one transaction; UsageError (nothing written) for a table with an absurd price."""
    check_prices(prices)
    if dry_run:
        return _plan(store.connect(), prices, dry_run=True)
    with store.transaction() as conn:
        # Read inside the write lock: what is reported is what is written, even with
        # `ask` processes recording runs at the same time.
        result = _plan(conn, prices, dry_run=False)
        reached("reprice")
        if result.changes or result.rollup_not_finite:
            for change in result.changes:
                _apply(conn, change.model, prices.price(change.model), prices.version)
                reached("reprice")
            _reprice_rollup(conn, prices)
    reached("reprice")
    return result


def check_prices(prices: PriceTable) -> None:
    """UsageError unless every price is finite, >= 0 and <= MAX_PRICE_USD_PER_MTOK.

    A table read from MONITOR_PRICES_FILE was checked already; one built in code was
    not, and a single ``inf`` would turn costs into NULLs halfway through the write.
    """
    for model, price in prices.prices.items():
        for name, value in zip(PRICE_NAMES, astuple(price), strict=True):
            # cache_write_1h defaults to twice the input price: up to twice the cap.
            limit = MAX_PRICE_USD_PER_MTOK * (2 if name == "cache_write_1h" else 1)
            if not (math.isfinite(value) and 0 <= value <= limit):
                raise UsageError(
                    f"price table: '{shown(model)}' {name} must be a number from 0 to "
                    f"{MAX_PRICE_USD_PER_MTOK:g} USD per million tokens (got {value!r})"
                )


def _plan(conn: sqlite3.Connection, prices: PriceTable, *, dry_run: bool) -> RepriceResult:
    result = RepriceResult(prices.version, dry_run)
    stale = conn.execute(
        f"SELECT coalesce(provider, ''), model, count(*), "
        f"total(CASE WHEN {_FINITE} THEN cost_usd END), sum({_FINITE}), "
        f"sum(cost_usd IS NOT NULL AND NOT {_FINITE}) "
        f"FROM pipeline_runs WHERE model IS NOT NULL AND {_STALE} GROUP BY 1, 2 ORDER BY 1, 2",
        (prices.version,),
    ).fetchall()
    for provider, model, runs, before, finite_before, not_finite in stale:
        price = prices.price(model)
        change = ModelChange(
            provider, model, runs, before if finite_before else None, not_finite_before=not_finite
        )
        change.cost_after_usd = _cost_of(conn, model, price, prices.version)
        if price is None and not finite_before and not not_finite:
            continue  # unpriced before and after: nothing to say or write
        result.changes.append(change)
    (result.rollup_not_finite,) = conn.execute(
        f"SELECT count(*) FROM usage_buckets WHERE NOT {_FINITE}"
    ).fetchone()
    return result


def _reprice_rollup(conn: sqlite3.Connection, prices: PriceTable) -> None:
    """The usage rollup at today's prices too, its rows for pruned runs included.

    A rollup row holds one model, so its cost is that model's price times its token
    sums: exactly the sum of its runs' repriced costs. Its run counts follow the runs
    table: the runs with tokens become all priced (or all unpriced), while runs that
    used no tokens keep the cost they had (repricing leaves them alone), which is
    ``priced_runs - (token_runs - unpriced_runs)`` of them.
    """
    # Not the runs without a model (''): repricing leaves those runs alone too.
    models = [
        row[0] for row in conn.execute("SELECT DISTINCT model FROM usage_buckets WHERE model != ''")
    ]
    for model in models:
        price = prices.price(model)
        if price is None:
            conn.execute(
                "UPDATE usage_buckets SET cost_usd = 0, "
                "priced_runs = priced_runs - (token_runs - unpriced_runs), "
                "unpriced_runs = token_runs WHERE model = ?",
                (model,),
            )
        else:
            expression, params = _cost_expression(price)
            conn.execute(
                f"UPDATE usage_buckets SET cost_usd = {expression}, "
                "priced_runs = priced_runs + unpriced_runs, unpriced_runs = 0 WHERE model = ?",
                [*params, model],
            )
        reached("reprice")


def _cost_expression(price: ModelPrice) -> tuple[str, list[float]]:
    return (
        "(input_tokens * ? + output_tokens * ? + cache_read_tokens * ? "
        "+ cache_write_tokens * ? + cache_write_1h_tokens * ?) / 1000000.0",
        [price.input, price.output, price.cache_read, price.cache_write, price.cache_write_1h],
    )


def _cost_of(
    conn: sqlite3.Connection, model: str, price: ModelPrice | None, version: str
) -> float | None:
    if price is None:
        return None
    expression, params = _cost_expression(price)
    row = conn.execute(
        f"SELECT total({expression}) FROM pipeline_runs WHERE model = ? AND {_STALE}",
        [*params, model, version],
    ).fetchone()
    return float(row[0])


def _apply(conn: sqlite3.Connection, model: str, price: ModelPrice | None, version: str) -> None:
    # One statement per model: inside the one transaction, batches would only add
    # round trips (the lock is held until COMMIT either way).
    if price is None:
        conn.execute(
            f"UPDATE pipeline_runs SET cost_usd = NULL, price_version = NULL "
            f"WHERE model = ? AND ({BILLED_TOKENS}) > 0 AND cost_usd IS NOT NULL",
            (model,),
        )
        return
    expression, params = _cost_expression(price)
    conn.execute(
        f"UPDATE pipeline_runs SET cost_usd = {expression}, price_version = ? "
        f"WHERE model = ? AND {_STALE}",
        [*params, version, model, version],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 10)
