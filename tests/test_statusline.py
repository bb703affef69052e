"""``assistant monitor statusline``: the figures, the format, and the fast path.

The fast path (the launcher, before typer is imported) and the full CLI command must
print the same line; the fast path must import nothing but the standard library
and our light modules; and where it is unsure it hands over to the CLI, which
prints the one-line error.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from assistant_monitoring.breaker.state import BreakerState
from assistant_monitoring.breaker.store import BreakerStateStore
from tests.conftest import run_assistant, run_main, subprocess_env
from tests.helpers.locks import held
from tests.test_usage import seed

PROBE = """
import json, sys
sys.argv = ["assistant", *{args!r}]
from assistant.launcher import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
# Everything the fast path may import beyond the standard library.
OURS = {
    "assistant",
    "assistant.launcher",
    "assistant_monitoring",
    "assistant_monitoring._lazy",
    "assistant_monitoring.errors",
    "assistant_monitoring.settings.profiles",
    "assistant_monitoring.settings",
    "assistant_monitoring.settings.envfile",
    "assistant_monitoring.statusline",
    "assistant_monitoring.timeparse",
    "assistant_monitoring.usage",
    "assistant_monitoring.zones",
}
SLOW_STDLIB = {"typing", "dataclasses", "pathlib", "inspect", "asyncio", "urllib.parse"}


def probe(*args: str, **env: str) -> tuple[str, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=list(args))],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        check=True,
    )
    return result.stdout, set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_fast_path_imports_only_light_modules(data_dir: Path) -> None:
    seed(data_dir, {"started_at": time.time() - 10})
    out, modules = probe("monitor", "statusline")
    assert "1 runs" in out
    ours = {m for m in modules if m.split(".")[0] in ("assistant", "assistant_monitoring")}
    assert ours <= OURS, f"the fast path imported {sorted(ours - OURS)}"
    third_party = {m.split(".")[0] for m in modules} & {"typer", "click", "pydantic", "rich"}
    assert not third_party, third_party
    assert not (SLOW_STDLIB & modules), sorted(SLOW_STDLIB & modules)
    # --help is the full CLI's job: the probe must see typer then (else it proves nothing).
    _, with_help = probe("monitor", "statusline", "--help")
    assert "typer" in {m.split(".")[0] for m in with_help}


def test_figures_and_format_match_the_full_cli(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    seed(
        data_dir,
        {"started_at": now - 30, "cost_usd": 0.30},
        {"started_at": now - 20, "cost_usd": 0.12},
        {"started_at": now - 10, "status": "failure", "cost_usd": None, "input_tokens": 0},
        {"started_at": now - 2 * 86400, "cost_usd": 5.0},  # not today
    )
    breakers = BreakerStateStore(data_dir / "monitoring.db")
    try:
        breakers.update(
            "llm:anthropic",
            lambda _: BreakerState("llm:anthropic", "open", 5, 1, 0, now, now + 60, "5xx", now),
        )
    finally:
        breakers.close()
    env = {"MONITOR_DAILY_BUDGET_USD": "2", "MONITOR_TIMEZONE": "UTC"}
    template = "|".join(
        "{" + name + "}"
        for name in (
            "health", "cost", "cost_usd", "runs", "errors", "error_rate",
            "breakers", "open_breakers", "budget", "profile",
        )
    )  # fmt: skip
    fast = run_assistant("monitor", "statusline", "--format", template, **env)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout == "·|$0.4200|0.4200|3|1|33%| ⚡llm:anthropic|1|21%|test\n"
    default = run_assistant("monitor", "statusline", **env)
    assert default.stdout == "· $0.4200 3 runs 33% err ⚡llm:anthropic\n"
    # The full CLI (in-process: no launcher) prints the same line.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_main(capsys, "monitor", "statusline", "--format", template)
    assert code == 0, err
    assert out == fast.stdout


def test_health_glyph_from_recent_checks(data_dir: Path) -> None:
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.registry import MetricsRegistry
    from tests.conftest import flush_into_store

    data_dir.mkdir(parents=True)
    inst = Instrumentation(MetricsRegistry())
    inst.metrics.health_status.labels("database").set(1.0)
    inst.metrics.health_status.labels("llm").set(0.5)
    flush_into_store(data_dir, inst)
    assert run_assistant("monitor", "statusline", "-f", "{health}").stdout == "▲\n"
    inst.metrics.health_status.labels("llm").set(0.0)
    flush_into_store(data_dir, inst)
    assert run_assistant("monitor", "statusline", "-f", "{health}").stdout == "✗\n"


def test_unsure_cases_go_to_the_cli_with_one_line_errors(data_dir: Path) -> None:
    cases = [
        (["--format", "{nope}"], {}, "--format: unknown field {nope}"),
        (["--format", "{cost:>10}"], {}, "no format specs"),
        (["--format", "{"], {}, "--format:"),
        (["--tz", "Mars/Olympus"], {}, "--tz: unknown time zone"),
        ([], {"MONITOR_DAILY_BUDGET_USD": "lots"}, "MONITOR_DAILY_BUDGET_USD"),
    ]
    for args, env, message in cases:
        result = run_assistant("monitor", "statusline", *args, **env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    junk = data_dir / "monitoring.db"
    data_dir.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"this is not a database" * 100)
    # In a prompt: the marker and exit 0, on both paths; --debug (the full CLI) says why.
    broken = run_assistant("monitor", "statusline")
    assert (broken.returncode, broken.stdout, broken.stderr) == (0, "?\n", "")
    told = run_assistant("--debug", "monitor", "statusline")
    assert (told.returncode, told.stdout) == (0, "?\n")
    assert "is damaged" in told.stderr
    assert len(told.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "fault",
    ["locked", "fifo", "device", "symlink-loop", "dangling", "empty", "foreign", "newer"],
)
@pytest.mark.parametrize("debug", [False, True], ids=["fast", "full-cli"])
def test_a_store_that_cannot_be_read_at_once_is_a_marker(
    data_dir: Path, fault: str, debug: bool
) -> None:
    """Found on a bad day: a lock holder made the statusline wait 44 s, a FIFO forever."""
    import os

    seed(data_dir, {"started_at": time.time() - 10})
    store = data_dir / "monitoring.db"
    if fault != "locked":
        store.unlink()
        for extra in ("-wal", "-shm"):
            Path(f"{store}{extra}").unlink(missing_ok=True)
        if fault == "fifo":
            os.mkfifo(store)
        elif fault == "empty":
            store.write_bytes(b"")
        elif fault == "foreign":  # a SQLite file, but none of ours: never migrated from a prompt
            with closing(sqlite3.connect(store)) as conn, conn:
                conn.execute("CREATE TABLE theirs (x)")
        elif fault == "newer":
            seed(data_dir, {"started_at": time.time() - 10})
            with closing(sqlite3.connect(store)) as conn, conn:
                conn.execute("INSERT INTO schema_migrations VALUES ('m999_future', 0)")
                conn.execute("PRAGMA journal_mode = DELETE")
        elif fault == "device":
            store.symlink_to("/dev/zero")
        elif fault == "symlink-loop":
            store.symlink_to(store)
        else:
            store.symlink_to(data_dir / "gone.db")
    before = store.read_bytes() if store.is_file() and not store.is_symlink() else None
    with held(store) if fault == "locked" else contextlib.nullcontext():
        args = ["--debug"] if debug else []
        started = time.monotonic()
        result = run_assistant(*args, "monitor", "statusline", timeout=60)
        took = time.monotonic() - started
    assert (result.returncode, result.stdout) == (0, "?\n"), result.stderr
    assert took < 10, took  # a hang is forever; start-up on a loaded machine is seconds
    if before is not None:
        assert store.read_bytes() == before, "a prompt never writes the store"
    assert "Traceback" not in result.stderr
    if not debug:
        assert result.stderr == ""


def test_the_newest_migration_it_reads_is_the_stores() -> None:
    from assistant_monitoring.metrics.store import MIGRATIONS
    from assistant_monitoring.statusline import LATEST_STORE_MIGRATION

    assert MIGRATIONS[-1][0] == LATEST_STORE_MIGRATION
    assert sorted(name for name, _ in MIGRATIONS)[-1] == LATEST_STORE_MIGRATION


def test_an_interrupted_restore_is_a_marker_and_left_for_the_next_command(
    data_dir: Path,
) -> None:
    """Found by a hostile try: after a restore killed mid-swap the statusline showed
    the set-aside store's figures (or zeros) and made -wal/-shm beside a file mid-swap."""
    from assistant_monitoring.restorejournal import JOURNAL_NAME
    from assistant_monitoring.statusline import RESTORE_JOURNAL

    assert JOURNAL_NAME == RESTORE_JOURNAL
    seed(data_dir, {"started_at": time.time() - 10})
    journal = data_dir / RESTORE_JOURNAL
    journal.write_text("{}")
    before = sorted(p.name for p in data_dir.iterdir())
    result = run_assistant("monitor", "statusline")
    assert (result.returncode, result.stdout, result.stderr) == (0, "?\n", "")
    assert sorted(p.name for p in data_dir.iterdir()) == before


def test_no_store_yet(data_dir: Path) -> None:
    result = run_assistant("monitor", "statusline")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "· $0.00 0 runs 0% err\n"
