"""``assistant monitor usage``: periods in a time zone (across DST changes), keys,
budgets with their projection, repricing, CSV/JSON, and where runs came from.

Runs are written into a real monitoring.db with RunStore (as the pipeline writes
them), then read back through the CLI, in-process or installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from assistant_monitoring.errors import UsageError
from assistant_monitoring.gitinfo import find_git_place
from assistant_monitoring.pricing import PriceTable
from assistant_monitoring.runs import RunRecord, RunStore
from assistant_monitoring.usage.periods import named_window, parse_bound
from assistant_monitoring.zones import offset_segments
from tests.conftest import run_cli, run_main

NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def seed(data_dir: Path, *runs: dict[str, Any]) -> None:
    """Record runs as the pipeline does: priced with the current table unless given."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(data_dir / "monitoring.db")
    table = PriceTable()
    try:
        for number, fields in enumerate(runs):
            run = RunRecord(id=f"run_{number:06d}", started_at=0.0, status="success")
            run.provider, run.model = "anthropic", "claude-sonnet-4-5"
            run.input_tokens, run.output_tokens = 1000, 100
            for name, value in fields.items():
                setattr(run, name, value)
            run.finished_at = run.started_at + 1
            price = table.price(run.model or "")
            if "cost_usd" not in fields and price is not None:
                run.cost_usd = price.cost(
                    input=run.input_tokens,
                    output=run.output_tokens,
                    cache_read=run.cache_read_tokens,
                    cache_write=run.cache_write_tokens,
                    cache_write_1h=run.cache_write_1h_tokens,
                )
                run.price_version = table.version
            store.record(run)
    finally:
        store.close()


def usage_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run_main(capsys, "monitor", "usage", "--json", *args)
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


# -- time zones -----------------------------------------------------------------------

# New York leaves daylight saving on 2026-11-01 at 02:00 EDT (06:00 UTC): 01:00-02:00
# happens twice, and that day lasts 25 hours.
FALL_BACK_RUNS = [
    "2026-11-01T03:30",  # Oct 31 23:30 EDT
    "2026-11-01T04:30",  # Nov 1 00:30 EDT
    "2026-11-01T05:30",  # Nov 1 01:30 EDT
    "2026-11-01T06:30",  # Nov 1 01:30 EST, the second 01:30
    "2026-11-02T04:30",  # Nov 1 23:30 EST
    "2026-11-02T05:30",  # Nov 2 00:30 EST
]


def test_daily_and_hourly_follow_the_zone_across_a_dst_change(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(data_dir, *({"started_at": utc(when)} for when in FALL_BACK_RUNS))
    window = ["--since", "2026-10-31", "--until", "2026-11-02"]

    ny = usage_json(capsys, "daily", "--tz", "America/New_York", *window)
    days = {row["key"]: row["runs"] for row in ny["rows"]}
    assert days == {"2026-10-31": 1, "2026-11-01": 4, "2026-11-02": 1}
    (nov_1,) = [row for row in ny["rows"] if row["key"] == "2026-11-01"]
    assert (nov_1["start"], nov_1["end"]) == (
        "2026-11-01T00:00:00-04:00",
        "2026-11-02T00:00:00-05:00",
    )
    assert ny["tz"] == "America/New_York"
    assert ny["since"] == "2026-10-31T00:00:00-04:00"
    assert ny["until"] == "2026-11-03T00:00:00-05:00"  # --until a date: its end

    in_utc = usage_json(
        capsys, "daily", "--tz", "UTC", "--since", "2026-10-31", "--until", "2026-11-02"
    )
    assert {row["key"]: row["runs"] for row in in_utc["rows"]} == {"2026-11-01": 4, "2026-11-02": 2}

    hours = usage_json(
        capsys,
        "hourly",
        "--tz",
        "America/New_York",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-01",
    )
    keys = [row["key"] for row in hours["rows"]]
    # The repeated hour is two rows, told apart by their offsets.
    assert keys == [
        "2026-11-01 00:00 -0400",
        "2026-11-01 01:00 -0400",
        "2026-11-01 01:00 -0500",
        "2026-11-01 23:00 -0500",
    ]
    assert hours["totals"]["runs"] == 4


def test_spring_forward_day_is_23_hours_and_weeks_and_months_roll_up(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT in New York.
    seed(
        data_dir,
        {"started_at": utc("2026-03-08T04:59")},  # Mar 7 23:59 EST (a Saturday)
        {"started_at": utc("2026-03-08T05:00")},  # Mar 8 00:00 EST (a Sunday)
        {"started_at": utc("2026-03-09T03:59")},  # Mar 8 23:59 EDT
        {"started_at": utc("2026-03-09T04:00")},  # Mar 9 00:00 EDT (a Monday)
        {"started_at": utc("2026-04-01T04:00")},  # Apr 1 00:00 EDT
    )
    args = ["--tz", "America/New_York", "--since", "2026-03-01", "--until", "2026-04-30"]
    daily = usage_json(capsys, "daily", *args)
    rows = {row["key"]: row for row in daily["rows"]}
    assert {key: row["runs"] for key, row in rows.items()} == {
        "2026-03-07": 1,
        "2026-03-08": 2,
        "2026-03-09": 1,
        "2026-04-01": 1,
    }
    start = datetime.fromisoformat(rows["2026-03-08"]["start"])
    end = datetime.fromisoformat(rows["2026-03-08"]["end"])
    assert (end - start).total_seconds() == 23 * 3600
    weekly = usage_json(capsys, "weekly", *args)
    assert {row["key"]: row["runs"] for row in weekly["rows"]} == {
        "2026-03-02": 3,  # Monday Mar 2 to Sunday Mar 8
        "2026-03-09": 1,
        "2026-03-30": 1,
    }
    monthly = usage_json(capsys, "monthly", *args)
    assert {row["key"]: row["runs"] for row in monthly["rows"]} == {"2026-03": 4, "2026-04": 1}


def test_offset_segments_find_the_change_to_the_second() -> None:
    segments = offset_segments(NEW_YORK, utc("2026-10-30T00:00"), utc("2026-11-05T00:00"))
    assert [s.offset for s in segments] == [-4 * 3600, -5 * 3600]
    assert segments[0].end == utc("2026-11-01T06:00")


def test_named_periods_and_bounds() -> None:
    now = datetime(2026, 12, 2, 15, 30, tzinfo=NEW_YORK).timestamp()  # a Wednesday

    def local(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()

    def window(name: str) -> tuple[float, float]:
        found = named_window(name, NEW_YORK, now)
        return found.start, found.end

    assert window("today") == (local("2026-12-02"), local("2026-12-03"))
    assert window("yesterday") == (local("2026-12-01"), local("2026-12-02"))
    assert window("this-week") == (local("2026-11-30"), local("2026-12-07"))
    assert window("last-week") == (local("2026-11-23"), local("2026-11-30"))
    assert window("this-month") == (local("2026-12-01"), local("2027-01-01"))
    assert window("last-month") == (local("2026-11-01"), local("2026-12-01"))

    def bound(text: str, *, is_end: bool = False) -> float:
        return parse_bound(text, zone=NEW_YORK, now=now, option="--since", is_end=is_end)

    assert bound("2h") == now - 7200
    assert bound("2026-11-30") == local("2026-11-30")
    assert bound("2026-11-30", is_end=True) == local("2026-12-01")
    assert bound("2026-11-30T08:00") == local("2026-11-30T08:00")  # naive: the report's zone
    assert bound("2026-11-30T08:00Z") == utc("2026-11-30T08:00")
    assert bound("Yesterday", is_end=True) == local("2026-12-02")
    for bad in ("someday", "2026-13-01", "x" * 200, "٣d", "1e400d"):
        with pytest.raises(UsageError, match=r"^--since: "):
            bound(bad)


def test_bad_options_are_one_line_usage_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(data_dir, {"started_at": utc("2026-11-01T12:00")})
    cases = {
        ("weekdays",): "GROUP: expected one of daily",
        ("--tz", "Mars/Olympus"): "--tz: unknown time zone",
        ("--tz", "../../etc/passwd"): "--tz: not a time zone name",
        ("--provider", "cohere"): "--provider: expected one of anthropic, openai",
        ("--since", "today", "--until", "yesterday"): "--since: the window is empty",
        # Only --until given, before the default start: it is --until that is wrong
        # (found by tests/test_properties_api.py, which named since for /api/usage).
        ("--until", "1960-01-01"): "--until: the window is empty",
        ("--json", "--csv"): "--json and --csv: choose one",
        ("--dry-run",): "--dry-run: only with --reprice",
    }
    for args, message in cases.items():
        code, out, err = run_main(capsys, "monitor", "usage", *args)
        assert code == 2, (args, out, err)
        assert message in err, (args, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


# -- figures, breakdowns, formats -------------------------------------------------------

MIXED = [
    {"started_at": utc("2026-11-10T10:00"), "cache_read_tokens": 10_000},
    {
        "started_at": utc("2026-11-10T11:00"),
        "status": "failure",
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": None,
    },
    {
        "started_at": utc("2026-11-10T12:00"),
        "provider": "openai",
        "model": "my-local-model",  # unpriced
        "input_tokens": 500,
        "output_tokens": 50,
    },
    {
        "started_at": utc("2026-11-11T09:00"),
        "provider": "openai",
        "model": "gpt-5",
        "output_tokens": 3000,
        "reasoning_tokens": 2500,
        "conversation_id": "c_second",
        "session_id": "s-two",
        "repo": "webapp",
        "branch": "main",
    },
]
WINDOW = ["--tz", "UTC", "--since", "2026-11-10", "--until", "2026-11-11"]


def test_daily_figures_with_breakdown_unpriced_and_savings(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(data_dir, *MIXED)
    report = usage_json(capsys, "--breakdown", *WINDOW)
    first, second = report["rows"]
    assert first["key"] == "2026-11-10"
    assert (first["runs"], first["errors"]) == (3, 1)
    # sonnet: 1000 x 3 + 100 x 15 + 10,000 x 0.30 = 7,500 -> $0.0075 (the failed run
    # used nothing); the local model is unpriced and is not taken as $0.
    assert first["cost_usd"] == pytest.approx(0.0075)
    assert first["unpriced_runs"] == 1
    assert first["cache_savings_usd"] == pytest.approx(10_000 * (3 - 0.30) / 1e6)
    models = {m["model"]: m for m in first["models"]}
    assert models["my-local-model"]["cost_usd"] is None
    assert models["my-local-model"]["input_tokens"] == 500
    # gpt-5: 1000 x 1.25 + 3,000 x 10 = 31,250 -> $0.03125; reasoning counted, not added.
    assert second["cost_usd"] == pytest.approx(0.03125)
    assert second["reasoning_tokens"] == 2500
    totals = report["totals"]
    assert totals["runs"] == 4
    assert totals["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert totals["total_tokens"] == 1000 + 100 + 10_000 + 500 + 50 + 1000 + 3000

    only_unpriced = usage_json(capsys, "--model", "local", *WINDOW)
    assert only_unpriced["totals"]["cost_usd"] is None, "unpriced, never $0"
    assert only_unpriced["filters"] == {"model": "local"}
    openai_only = usage_json(capsys, "model", "--provider", "openai", *WINDOW)
    assert [row["key"] for row in openai_only["rows"]] == ["openai/gpt-5", "openai/my-local-model"]


def test_key_groups_csv_and_the_terminal_table(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(data_dir, *MIXED)
    repos = usage_json(capsys, "repo", *WINDOW)
    assert [(row["key"], row["runs"]) for row in repos["rows"]] == [("webapp", 1), ("(none)", 3)]
    sessions = usage_json(capsys, "session", "--limit", "1", *WINDOW)
    assert len(sessions["rows"]) == 1
    assert sessions["hidden_rows"] == 1
    conversations = usage_json(capsys, "conversation", *WINDOW)
    assert conversations["rows"][0]["key"] == "c_second"  # the costliest first

    code, out, err = run_main(capsys, "monitor", "usage", "--csv", "--breakdown", *WINDOW)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("key,provider,model,runs,errors")
    assert lines[-1].startswith("total,,,4,1,")
    local = [line for line in lines if "my-local-model" in line]
    assert local
    assert ",,1," in local[0], "an unpriced cost is an empty cell, never 0"

    code, out, err = run_main(capsys, "--no-color", "monitor", "usage", *WINDOW)
    assert code == 0, err
    assert "2026-11-10" in out
    assert "2026-11-11" in out
    assert "$0.0075+?" in out
    assert "1 run of unpriced models not in the cost" in out
    assert "█" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_store_yet_is_an_empty_report(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = usage_json(capsys)
    assert report["rows"] == []
    assert report["totals"]["runs"] == 0
    code, out, _ = run_main(capsys, "monitor", "usage")
    assert code == 0
    assert "No runs in this window. (no store yet)" in out


# -- budgets -------------------------------------------------------------------------


def test_budgets_spent_left_projection_and_run_out(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant_monitoring.settings import load_settings
    from assistant_monitoring.usage.service import usage_report

    paris = ZoneInfo("Europe/Paris")
    noon = datetime(2026, 11, 16, 12, 0, tzinfo=paris).timestamp()  # half the day gone
    seed(
        data_dir,
        {"started_at": noon - 6 * 3600, "cost_usd": 2.0},
        {"started_at": noon - 3600, "cost_usd": 2.0},
        {"started_at": noon - 20 * 86400, "cost_usd": 1.0},  # Oct 27: another month
        {"started_at": noon - 10 * 86400, "cost_usd": 3.0},  # Nov 6
    )
    monkeypatch.setenv("MONITOR_DAILY_BUDGET_USD", "6")
    monkeypatch.setenv("MONITOR_MONTHLY_BUDGET_USD", "100")
    monkeypatch.setenv("MONITOR_TIMEZONE", "Europe/Paris")
    answer = usage_report(load_settings().settings, now=noon)
    day, month = answer.budgets
    assert (day.spent_usd, day.remaining_usd, day.projected_usd) == (4.0, 2.0, 8.0)
    # $4 in 12 hours: the $6 last 18 hours, until 18:00.
    assert day.runs_out_at == datetime(2026, 11, 16, 18, 0, tzinfo=paris).timestamp()
    assert month.spent_usd == 7.0
    # 15.5 of November's 30 days gone: 7 / 15.5 x 30 = 13.55 -> lasts the month.
    assert month.projected_usd == pytest.approx(7.0 / 15.5 * 30)
    assert month.runs_out_at is None
    document = answer.as_json(breakdown=False)["budgets"]
    assert document[0]["setting"] == "MONITOR_DAILY_BUDGET_USD"
    assert document[0]["runs_out_at"] == "2026-11-16T18:00:00+01:00"
    assert document[1]["percent_used"] == 7.0


# -- repricing -----------------------------------------------------------------------


def test_reprice_recomputes_history_and_says_what_changed(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(
        data_dir,
        {"started_at": utc("2026-11-10T10:00")},  # sonnet at the built-in price
        {"started_at": utc("2026-11-10T11:00"), "cache_write_1h_tokens": 2000},
        {"started_at": utc("2026-11-10T12:00"), "model": "my-local-model", "provider": "openai"},
        {
            "started_at": utc("2026-11-10T13:00"),
            "status": "failure",
            "input_tokens": 0,
            "output_tokens": 0,
        },
    )
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "claude-sonnet-4-5": {"input": 6, "output": 30, "cache_write_1h": 12},
                "my-local-model": {"input": 1, "output": 2},
            }
        )
    )
    env = {"MONITOR_PRICES_FILE": str(prices)}
    dry = run_cli("monitor", "usage", "--reprice", "--dry-run", "--json", **env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["runs"] == 3
    shown = run_cli("monitor", "runs", "--json")
    assert {run["price_version"] for run in json.loads(shown.stdout)["runs"]} == {
        PriceTable().version,
        None,
    }, "a dry run writes nothing"

    done = run_cli("monitor", "usage", "--reprice", **env)
    assert done.returncode == 0, done.stderr
    assert "Repriced 3 runs" in done.stdout
    # sonnet before: 2 x (1000 x 3 + 100 x 15) + 2000 x 6 = 21,000 -> $0.0210;
    # after: 2 x (1000 x 6 + 100 x 30) + 2000 x 12 = 42,000 -> $0.0420.
    assert "anthropic/claude-sonnet-4-5: 2 runs, $0.0210 -> $0.0420" in done.stdout
    # local: 1000 x 1 + 100 x 2 = 1,200 -> $0.0012, where it was unpriced.
    assert "openai/my-local-model: 1 runs, unpriced -> $0.0012" in done.stdout
    report = json.loads(
        run_cli(
            "monitor",
            "usage",
            "--json",
            "--tz",
            "UTC",
            "--since",
            "2026-11-10",
            "--until",
            "2026-11-10",
            **env,
        ).stdout
    )
    assert report["totals"]["cost_usd"] == pytest.approx(0.0420 + 0.0012)
    assert report["totals"]["unpriced_runs"] == 0
    again = run_cli("monitor", "usage", "--reprice", **env)
    assert "nothing to do" in again.stdout

    # Back to the built-in table: the local model is unpriced again, never $0.
    back = run_cli("monitor", "usage", "--reprice", "--json")
    changes = {m["model"]: m for m in json.loads(back.stdout)["models"]}
    assert changes["my-local-model"]["cost_after_usd"] is None
    assert changes["claude-sonnet-4-5"]["cost_after_usd"] == pytest.approx(0.0210)


# -- attribution ---------------------------------------------------------------------


def test_git_place_from_head_files(tmp_path: Path) -> None:
    repo = tmp_path / "my-project"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/feature/usage\n")
    (repo / "src" / "deep").mkdir(parents=True)
    place = find_git_place(repo / "src" / "deep")
    assert place is not None
    assert (place.repo, place.branch) == ("my-project", "feature/usage")
    (repo / ".git" / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    detached = find_git_place(repo)
    assert detached is not None
    assert detached.branch == "detached@0123456"
    # A worktree: .git is a file naming the real git directory.
    worktree = tmp_path / "wt"
    worktree.mkdir()
    real = tmp_path / "gitdirs" / "wt"
    real.mkdir(parents=True)
    (real / "HEAD").write_text("ref: refs/heads/hotfix\n")
    (worktree / ".git").write_text(f"gitdir: {real}\n")
    linked = find_git_place(worktree)
    assert linked is not None
    assert (linked.repo, linked.branch) == ("wt", "hotfix")
    # Junk in HEAD is not stored.
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/\x1b[31mred\n")
    junk = find_git_place(repo)
    assert junk is not None
    assert junk.branch is None
    assert find_git_place(Path("/")) is None


def test_ask_records_the_repository_it_ran_in(data_dir: Path, tmp_path: Path) -> None:
    from assistant.stubllm import StubLLMServer

    repo = tmp_path / "checkout"
    repo.mkdir()
    git = subprocess.run(["git", "init", "-q", "-b", "trunk", str(repo)], check=False)
    if git.returncode != 0:  # no git here: lay out what `git init` would
        (repo / ".git").mkdir()
        (repo / ".git" / "HEAD").write_text("ref: refs/heads/trunk\n")
    with StubLLMServer() as stub:
        env = {
            "LLM_BASE_URL": stub.url,
            "LLM_API_KEY": "sk-test-key-0000000000000000",
            "ASSISTANT_SESSION_ID": "s-from-wrapper",
        }
        result = subprocess.run(
            [*_assistant(), "ask", "Which repo?"],
            cwd=repo,
            capture_output=True,
            text=True,
            env=_env(env),
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    (run,) = json.loads(run_cli("monitor", "runs", "--json").stdout)["runs"]
    assert (run["repo"], run["branch"], run["session_id"]) == (
        "checkout",
        "trunk",
        "s-from-wrapper",
    )
    report = json.loads(run_cli("monitor", "usage", "repo", "--json").stdout)
    assert [row["key"] for row in report["rows"]] == ["checkout"]


def _assistant() -> list[str]:
    from tests.conftest import installed_assistant

    return [installed_assistant()]


def _env(extra: dict[str, str]) -> dict[str, str]:
    from tests.conftest import subprocess_env

    return subprocess_env(**extra)


def test_budget_alerts_use_the_report_figures(data_dir: Path) -> None:
    import time

    now = time.time()
    seed(
        data_dir,
        {"started_at": now - 5, "cost_usd": 0.9},
        {"started_at": now - 1, "cost_usd": 0.05},
    )
    env = {"MONITOR_DAILY_BUDGET_USD": "1", "MONITOR_TIMEZONE": "UTC"}
    alerts = run_cli("monitor", "alerts", "--json", **env)
    assert alerts.returncode == 1, alerts.stderr
    (firing,) = json.loads(alerts.stdout)["firing"]
    assert firing["rule"] == "daily_cost_95"
    assert firing["value"] == pytest.approx(0.95)
    report = json.loads(run_cli("monitor", "usage", "--json", **env).stdout)
    assert report["budgets"][0]["spent_usd"] == pytest.approx(firing["value"])


# -- the usage rollup ------------------------------------------------------------------


def _raw_sums(path: Path) -> tuple[Any, ...]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return tuple(
            conn.execute(
                "SELECT count(*), sum(input_tokens), sum(output_tokens), "
                "round(total(cost_usd), 9) FROM pipeline_runs WHERE status != 'running'"
            ).fetchone()
        )


def _rollup_sums(path: Path) -> tuple[Any, ...]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return tuple(
            conn.execute(
                "SELECT sum(runs), sum(input_tokens), sum(output_tokens), "
                "round(total(cost_usd), 9) FROM usage_buckets"
            ).fetchone()
        )


def test_rollup_follows_every_record(data_dir: Path) -> None:
    now = time.time()
    seed(
        data_dir,
        {"started_at": now - 100},
        {"started_at": now - 90, "status": "interrupted", "input_tokens": 10, "output_tokens": 0},
        {"started_at": now - 80, "status": "running", "input_tokens": 0, "output_tokens": 0},
    )
    path = data_dir / "monitoring.db"
    assert _rollup_sums(path) == _raw_sums(path)
    assert _rollup_sums(path)[0] == 2, "a running run is not counted"
    store = RunStore(path)
    try:
        # The running run ends; then a finished one is recorded again (a retry of the
        # write): counted once, with its newest figures.
        running = store.get("run_000002")
        assert running is not None
        running.status, running.input_tokens, running.output_tokens = "success", 300, 30
        store.record(running)
        again = store.get("run_000000")
        assert again is not None
        again.output_tokens = 999
        store.record(again)
    finally:
        store.close()
    assert _rollup_sums(path) == _raw_sums(path)
    assert _rollup_sums(path)[:3] == (3, 1000 + 10 + 300, 999 + 0 + 30)


def test_rollup_is_backfilled_by_the_migration(data_dir: Path) -> None:
    import sqlite3

    seed(data_dir, *({"started_at": utc(f"2026-11-{day:02d}T12:00")} for day in range(1, 21)))
    path = data_dir / "monitoring.db"
    with sqlite3.connect(path) as conn:  # as a store written before the rollup existed
        conn.execute("DROP TABLE usage_buckets")
        conn.execute("DELETE FROM schema_migrations WHERE name = 'm006_usage_buckets'")
    RunStore(path).close()
    reopened = RunStore(path)
    try:
        reopened.query(limit=1)  # opens, so migrates
    finally:
        reopened.close()
    assert _rollup_sums(path) == _raw_sums(path)
    assert _rollup_sums(path)[0] == 20


def test_usage_outlives_the_runs(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant_monitoring.metrics.retention import Retention
    from assistant_monitoring.metrics.store import MetricsStore

    now = time.time()
    seed(data_dir, {"started_at": now - 60 * 86400}, {"started_at": now - 3600})
    store = MetricsStore(data_dir / "monitoring.db", retention=Retention(runs_days=30))
    try:
        assert store.apply_retention(now=now, budget=5).done
    finally:
        store.close()
    runs = json.loads(run_cli("monitor", "runs", "--json").stdout)["runs"]
    assert len(runs) == 1, "the old run is gone"
    monthly = usage_json(capsys, "monthly", "--tz", "UTC")
    assert monthly["totals"]["runs"] == 2, "its usage is not"


def test_hostile_names_are_shown_as_text(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder may be called anything: escapes and bidi overrides are stored as '?'.
    odd = tmp_path / "evil\x1b[2J\u202eproject"
    (odd / ".git").mkdir(parents=True)
    (odd / ".git" / "HEAD").write_text("ref: refs/heads/x\u202ey\n")
    place = find_git_place(odd)
    assert place is not None
    assert (place.repo, place.branch) == ("evil?[2J?project", "x?y")
    # Rich markup in a stored name (a repo, a session id, a model a server named) is
    # printed as it is, not read as markup (an unmatched "[/]" would even crash rich).
    seed(
        data_dir,
        {"started_at": utc("2026-11-10T10:00"), "repo": "[red]x[/]", "session_id": "[/]"},
    )
    for group in ("repo", "session"):
        code, out, err = run_main(capsys, "--no-color", "monitor", "usage", group, *WINDOW)
        assert code == 0, err
        assert "[red]x[/]" in out if group == "repo" else "[/]" in out


WRITER = """
import sys, time
from pathlib import Path
from assistant_monitoring.runs import RunRecord, RunStore
store = RunStore(Path(sys.argv[1]))
for n in range(150):
    run = RunRecord(id=f"run_{sys.argv[2]}_{n}", started_at=time.time(), provider="openai",
                    model="gpt-4.1", repo="r" + sys.argv[2])
    store.record(run)  # running
    run.status, run.input_tokens, run.output_tokens = "success", 100 + n, 10
    run.cost_usd = (run.input_tokens * 2 + 10 * 8) / 1e6
    store.record(run)  # finished
store.close()
"""


def test_rollup_stays_exact_with_processes_writing_at_once(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    path = data_dir / "monitoring.db"
    RunStore(path).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)]) for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    assert _rollup_sums(path) == _raw_sums(path)
    assert _rollup_sums(path)[0] == 600
