"""``monitor usage`` on a bad day: non-finite figures a store may already hold, repricing
that fails or is killed at any step, and CSV cells a spreadsheet would run.

Repricing is one transaction: the test kills ``assistant monitor usage --reprice``
with SIGKILL after each of its steps in turn (``ASSISTANT_TEST_KILL_AT=reprice:k``,
the shared test hook in ``killpoints``), then checks that the store is intact, holds the
old figures or the new ones (never a mix), that the rollup still equals the runs
table, and that a rerun finishes the job.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from assistant_monitoring.metrics.store import MetricsStore
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.rollup import REBUILD
from tests.conftest import run_assistant, run_main
from tests.test_usage import WINDOW, seed, utc

# -- figures that are not finite -------------------------------------------------------


def test_a_stored_infinite_cost_fails_loudly_never_as_invalid_json(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older version with a price of 1e308 stored ``inf``: no format prints it."""
    seed(
        data_dir,
        {"started_at": utc("2026-11-10T10:00"), "cost_usd": math.inf, "price_version": "p-old"},
        {"started_at": utc("2026-11-10T11:00")},
    )
    for args in (("--json",), ("--csv",), ()):
        code, out, err = run_main(capsys, "monitor", "usage", *args, *WINDOW)
        assert code == 1, (args, out, err)
        assert out == "", "nothing printed, rather than a figure that is not one"
        (line,) = err.strip().splitlines()
        assert "not a finite number" in line
        assert "assistant monitor usage --reprice" in line
        assert "Traceback" not in err


def test_reprice_repairs_stored_infinite_costs_and_says_so_in_valid_json(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(
        data_dir,
        {"started_at": utc("2026-11-10T10:00"), "cost_usd": math.inf, "price_version": "p-old"},
        {"started_at": utc("2026-11-10T11:00")},
    )
    code, out, err = run_main(capsys, "monitor", "usage", "--reprice", "--json")
    assert code == 0, err
    document = json.loads(out, parse_constant=_refuse)
    (change,) = document["models"]
    assert change["runs"] == 1
    assert change["cost_before_usd"] is None
    assert change["not_finite_before"] == 1
    assert change["cost_after_usd"] == pytest.approx(0.0045)
    code, out, err = run_main(capsys, "monitor", "usage", "--json", *WINDOW)
    assert code == 0, err
    assert json.loads(out, parse_constant=_refuse)["totals"]["cost_usd"] == pytest.approx(0.009)
    assert _rollup_matches_runs(data_dir / "monitoring.db")


def _refuse(name: str) -> None:
    raise AssertionError(f"invalid JSON: bare {name}")


# -- repricing is all or nothing -----------------------------------------------------

PRICES = {
    "claude-sonnet-4-5": {"input": 6, "output": 30, "cache_write_1h": 12},
    "my-local-model": {"input": 1, "output": 2},
}
HISTORY = [
    {"started_at": utc("2026-11-10T10:00")},  # sonnet at the built-in price
    {"started_at": utc("2026-11-10T10:20"), "cache_write_1h_tokens": 2000},
    {"started_at": utc("2026-11-11T09:00"), "cache_read_tokens": 5000},
    {"started_at": utc("2026-11-10T12:00"), "model": "my-local-model", "provider": "openai"},
    {"started_at": utc("2026-11-12T12:00"), "model": "my-local-model", "provider": "openai"},
    {"started_at": utc("2026-11-10T13:00"), "model": "gpt-4.1", "provider": "openai"},
    # A failure before the model answered: no tokens, cost 0 at the built-in price.
    {"started_at": utc("2026-11-10T14:00"), "status": "failure", "input_tokens": 0,
     "output_tokens": 0},
]  # fmt: skip


def _runs(path: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, price_version, cost_usd FROM pipeline_runs").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _rollup_matches_runs(path: Path) -> bool:
    """The usage rollup is what rebuilding it from the runs table gives, to the cent."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TEMP TABLE expected AS SELECT * FROM usage_buckets WHERE 0")
        conn.execute(REBUILD.replace("INSERT INTO usage_buckets", "INSERT INTO temp.expected"))
        order = " ORDER BY bucket, provider, model, repo"
        stored = conn.execute("SELECT * FROM usage_buckets" + order).fetchall()
        expected = conn.execute("SELECT * FROM temp.expected" + order).fetchall()
    finally:
        conn.close()
    cost = 13  # cost_usd's column
    assert [row[:cost] + row[cost + 1 :] for row in stored] == [
        row[:cost] + row[cost + 1 :] for row in expected
    ]
    assert [row[cost] for row in stored] == pytest.approx([row[cost] for row in expected])
    return True


def _priced(path: Path, table: PriceTable) -> dict[str, tuple[Any, ...]]:
    """Every run as repricing with ``table`` must leave it."""
    out: dict[str, tuple[Any, ...]] = {}
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, model, price_version, cost_usd, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cache_write_1h_tokens FROM pipeline_runs"
        ).fetchall()
    for run_id, model, version, cost, *tokens in rows:
        price = table.price(model or "")
        if sum(tokens) == 0:
            out[run_id] = (version, cost)  # nothing used: left as it was
        elif price is None:
            out[run_id] = (None, None)
        else:
            names = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
            out[run_id] = (table.version, price.cost(**dict(zip(names, tokens, strict=True))))
    return out


def _same(found: dict[str, tuple[Any, ...]], wanted: dict[str, tuple[Any, ...]]) -> bool:
    if found.keys() != wanted.keys():
        return False
    for key, (version, cost) in found.items():
        want_version, want_cost = wanted[key]
        if version != want_version or (cost is None) != (want_cost is None):
            return False
        if cost is not None and not math.isclose(cost, want_cost, rel_tol=1e-9, abs_tol=1e-15):
            return False
    return True


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_reprice_that_fails_halfway_changes_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant_monitoring.usage import reprice as module

    seed(data_dir, *HISTORY)
    path = data_dir / "monitoring.db"
    before = _runs(path)
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps(PRICES))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.IntegrityError("NOT NULL constraint failed: usage_buckets.cost_usd")

    monkeypatch.setattr(module, "_reprice_rollup", broken)
    store = MetricsStore(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            module.reprice(store, PriceTable.with_overrides(prices_file))
    finally:
        store.close()
    assert _runs(path) == before, "the runs table and the rollup change together or not at all"
    assert _rollup_matches_runs(path)


def test_reprice_refuses_a_table_that_would_store_non_finite_costs(data_dir: Path) -> None:
    """A table built in code skips the file's checks: reprice checks it before writing."""
    from assistant_monitoring.errors import UsageError
    from assistant_monitoring.pricing import DEFAULT_PRICES, ModelPrice
    from assistant_monitoring.usage.reprice import reprice

    seed(data_dir, *HISTORY)
    path = data_dir / "monitoring.db"
    before = _runs(path)
    table = PriceTable({**DEFAULT_PRICES, "claude-sonnet-4-5": ModelPrice(math.inf, 15.0)})
    store = MetricsStore(path)
    try:
        with pytest.raises(UsageError, match="'claude-sonnet-4-5' input"):
            reprice(store, table)
    finally:
        store.close()
    assert _runs(path) == before


KILL = "ASSISTANT_TEST_KILL_AT"


def test_reprice_killed_after_every_step_leaves_old_or_new_and_a_rerun_finishes(
    data_dir: Path, tmp_path: Path
) -> None:
    seed(data_dir, *HISTORY)
    template = data_dir / "monitoring.db"
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps(PRICES))
    table = PriceTable.with_overrides(prices_file)
    old = _runs(template)
    new = _priced(template, table)
    assert not _same(old, new)
    killed: list[int] = []
    step = 1
    while step < 50:
        copy = tmp_path / f"step-{step}"
        copy.mkdir()
        for name in ("monitoring.db", "monitoring.db-wal", "monitoring.db-shm"):
            if (data_dir / name).exists():
                shutil.copy2(data_dir / name, copy / name)
        env = {"ASSISTANT_DATA_DIR": str(copy), "MONITOR_PRICES_FILE": str(prices_file)}
        result = run_assistant("monitor", "usage", "--reprice", **env, **{KILL: f"reprice:{step}"})
        path = copy / "monitoring.db"
        if result.returncode != -signal.SIGKILL:
            assert result.returncode == 0, result.stderr
            assert _same(_runs(path), new)
            break
        killed.append(step)
        assert _integrity(path) == "ok", step
        found = _runs(path)
        assert _same(found, old) or _same(found, new), f"a mix after step {step}: {found}"
        assert _rollup_matches_runs(path)
        rerun = run_assistant("monitor", "usage", "--reprice", **env)
        assert rerun.returncode == 0, rerun.stderr
        assert _same(_runs(path), new), step
        assert _rollup_matches_runs(path)
        step += 1
    # Open, one update per model's runs, one per model of the rollup, after commit.
    assert len(killed) >= 5, f"the hook killed the process after steps {killed} only"


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_reprice_stopped_by_a_signal_mid_transaction_changes_nothing(
    name: str, data_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM (exit 143) and Ctrl-C (130) roll the transaction back; a rerun repairs."""
    seed(data_dir, *HISTORY)
    path = data_dir / "monitoring.db"
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps(PRICES))
    old, new = _runs(path), _priced(path, PriceTable.with_overrides(prices_file))
    env = {"MONITOR_PRICES_FILE": str(prices_file)}
    for step in (1, 3):  # the transaction open; the runs half written
        stopped = run_assistant(
            "monitor", "usage", "--reprice", **env, **{KILL: f"reprice:{step}:{name}"}
        )
        assert stopped.returncode == (143 if name == "TERM" else 130), stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert _runs(path) == old, step
        assert _rollup_matches_runs(path)
    done = run_assistant("monitor", "usage", "--reprice", **env)
    assert done.returncode == 0, done.stderr
    assert _same(_runs(path), new)


def test_two_reprices_at_once_do_the_job_once(data_dir: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import installed_assistant, subprocess_env

    seed(data_dir, *HISTORY)
    path = data_dir / "monitoring.db"
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps(PRICES))
    new = _priced(path, PriceTable.with_overrides(prices_file))
    env = subprocess_env(MONITOR_PRICES_FILE=str(prices_file))
    both = [
        subprocess.Popen(
            [installed_assistant(), "monitor", "usage", "--reprice", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in both]
    assert [process.returncode for process in both] == [0, 0]
    counts = sorted(json.loads(out)["runs"] for out in outputs)
    assert counts[0] == 0, "the second saw the first's work, inside its own transaction"
    assert counts[1] > 0
    assert _same(_runs(path), new)
    assert _rollup_matches_runs(path)


# -- CSV cells a spreadsheet would run -----------------------------------------------

FORMULAS = [
    "=1+1",
    " =1+1",
    "  +cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "-2+3",
    "@SUM(A1)",
    "\u3000=1+1",  # an ideographic space: whitespace too
    "\t",
    "\rplain",
]


def test_csv_neutralises_formulas_from_user_data_and_keeps_our_numbers(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(
        data_dir,
        *(
            {"started_at": utc("2026-11-10T10:00"), "repo": text, "cache_write_tokens": 4000}
            for text in FORMULAS
        ),
        {"started_at": utc("2026-11-10T10:00"), "repo": "plain-repo", "model": "=HYPERLINK(1)"},
    )
    code, out, err = run_main(capsys, "monitor", "usage", "repo", "--csv", "--breakdown", *WINDOW)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    keys = {row["key"] for row in rows}
    for text in FORMULAS:
        assert "'" + text in keys, (text, keys)
    assert "plain-repo" in keys, "text that is no formula is left as it is"
    assert "'=HYPERLINK(1)" in {row["model"] for row in rows}
    for row in rows:
        for name, cell in row.items():
            stripped = cell.lstrip()
            if cell[:1] in ("\t", "\r", "\n") or stripped[:1] in ("=", "+", "-", "@"):
                # Only the numbers we write may start with "-": cache writes that never
                # paid off show negative savings, and must stay numbers.
                assert name == "cache_savings_usd", (name, cell)
                assert float(cell) < 0
    assert any(float(row["cache_savings_usd"]) < 0 for row in rows)
