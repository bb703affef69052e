"""``monitor usage --reprice``: recompute the recorded cost of past runs with today's table.

For when prices change, or an unpriced model gets a price in MONITOR_PRICES_FILE.
Each run's cost is its own token counts times the current price of its model (the
same :meth:`ModelPrice.cost` the live path uses, as one SQL expression); its
``price_version`` becomes the table's. A model that lost its price goes back to
unpriced (cost NULL), never to $0. Only runs priced with another version (or not at
all) are touched, in batches of short transactions so running ``ask`` processes
never wait long for the lock. The usage rollup is repriced from its token sums
(rows of runs already pruned included), so reports and budgets follow. The metric
store's cost counters are not rewritten: they are Prometheus counters, and what a
scrape already saw cannot be taken back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from assistant_monitoring.metrics.pricing import ModelPrice, PriceTable
from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.usage.buckets import BILLED_TOKENS

_BATCH = 5000
_STALE = f"({BILLED_TOKENS}) > 0 AND price_version IS NOT ?"


@dataclass
class ModelChange:
    """What repricing did to one model's runs."""

    provider: str
    model: str
    runs: int = 0
    cost_before_usd: float | None = None  # None: they were all unpriced
    cost_after_usd: float | None = None  # None: the model has no price now

    def as_json(self) -> dict[str, Any]:
        """The change as ``--reprice --json`` prints it."""
        return {
            "provider": self.provider,
            "model": self.model,
            "runs": self.runs,
            "cost_before_usd": _rounded(self.cost_before_usd),
            "cost_after_usd": _rounded(self.cost_after_usd),
        }


@dataclass
class RepriceResult:
    """What ``--reprice`` changed (or, with ``dry_run``, would change)."""

    version: str
    dry_run: bool
    changes: list[ModelChange] = field(default_factory=list)

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
        }


def reprice(store: MetricsStore, prices: PriceTable, *, dry_run: bool = False) -> RepriceResult:
    """Reprice every run not priced with ``prices.version``."""
    result = RepriceResult(prices.version, dry_run)
    conn = store.connect()
    stale = conn.execute(
        f"SELECT coalesce(provider, ''), model, count(*), total(cost_usd), "
        f"sum(cost_usd IS NOT NULL) FROM pipeline_runs WHERE model IS NOT NULL AND {_STALE} "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        (prices.version,),
    ).fetchall()
    for provider, model, runs, before, priced_before in stale:
        price = prices.price(model)
        change = ModelChange(provider, model, runs, before if priced_before else None)
        change.cost_after_usd = _cost_of(conn, model, price, prices.version)
        if price is None and not priced_before:
            continue  # unpriced before and after: nothing to say or write
        result.changes.append(change)
        if not dry_run:
            _apply(store, model, price, prices.version)
    if not dry_run and result.changes:
        _reprice_rollup(store, prices)
    return result


def _reprice_rollup(store: MetricsStore, prices: PriceTable) -> None:
    """The usage rollup at today's prices too, its rows for pruned runs included.

    A rollup row holds one model, so its cost is that model's price times its token
    sums: exactly the sum of its runs' repriced costs.
    """
    conn = store.connect()
    models = [row[0] for row in conn.execute("SELECT DISTINCT model FROM usage_buckets")]
    for model in models:
        price = prices.price(model) if model else None
        with store.transaction() as conn:
            if price is None:
                conn.execute(
                    "UPDATE usage_buckets SET cost_usd = 0, priced_runs = 0, "
                    "unpriced_runs = token_runs WHERE model = ?",
                    (model,),
                )
                continue
            expression, params = _cost_expression(price)
            conn.execute(
                f"UPDATE usage_buckets SET cost_usd = {expression}, priced_runs = token_runs, "
                "unpriced_runs = 0 WHERE model = ?",
                [*params, model],
            )


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


def _apply(store: MetricsStore, model: str, price: ModelPrice | None, version: str) -> None:
    params: list[float] = []
    if price is None:
        assignment, new_version = "cost_usd = NULL, price_version = ?", None
    else:
        expression, params = _cost_expression(price)
        assignment, new_version = f"cost_usd = {expression}, price_version = ?", version
    # Rows already at `version` (priced) or NULL (unpriced) stop matching once written.
    done = "price_version IS NOT ?" if price is not None else "cost_usd IS NOT NULL"
    while True:
        with store.transaction() as conn:
            changed = conn.execute(
                f"UPDATE pipeline_runs SET {assignment} WHERE rowid IN (SELECT rowid FROM "
                f"pipeline_runs WHERE model = ? AND ({BILLED_TOKENS}) > 0 AND {done} "
                f"LIMIT {_BATCH})",
                [*params, new_version, model, *([version] if price is not None else [])],
            ).rowcount
        if changed < _BATCH:
            return


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 10)
