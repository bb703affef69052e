"""`assistant monitor health` and `monitor breakers` from the CLI: output, JSON, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.breaker import BreakerConfig, BreakerStateStore, CircuitBreaker
from assistant_monitoring.metrics.query import query_window
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import installed_assistant, make_healthy, run_cli, subprocess_env


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def healthy_env(
    data_dir: Path, stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A setup where every check passes whatever the machine's disk and memory."""
    return make_healthy(data_dir, stub.url, monkeypatch, key="sk-ant-test-0000000000000000")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (tests/test_fault_matrix.py runs it as a process)."""
    return run_cli(*args, **env)


def test_healthy_exit_0_with_a_colored_report(healthy_env: dict[str, str]) -> None:
    result = run("monitor", "health")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("database", "llm", "memory", "disk", "breakers", "storage"):
        assert name in result.stdout
    assert "HEALTHY" in result.stdout


def test_json_is_health_json(healthy_env: dict[str, str]) -> None:
    result = run("monitor", "health", "--json")
    document = json.loads(result.stdout)
    assert document["status"] == "pass"
    assert set(document["checks"]) == {
        "database:responseTime",
        "llm:anthropic:responseTime",
        "memory:utilization",
        "disk:free",
        "circuitBreakers:open",
        "storage:size",
    }
    (llm,) = document["checks"]["llm:anthropic:responseTime"]
    assert llm["status"] == "pass"
    assert llm["observedUnit"] == "ms"
    assert isinstance(llm["observedValue"], float)


def test_degraded_exit_1_and_fail_on_unhealthy(healthy_env: dict[str, str], data_dir: Path) -> None:
    (data_dir / "assistant.db").unlink()
    degraded = run("monitor", "health")
    assert degraded.returncode == 1
    assert "not created yet" in degraded.stdout
    assert run("monitor", "health", "--fail-on", "unhealthy").returncode == 0


def test_unhealthy_exit_2(healthy_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_API_KEY")
    result = run("monitor", "health", "--json")
    assert result.returncode == 2
    (llm,) = json.loads(result.stdout)["checks"]["llm:anthropic:responseTime"]
    assert llm["status"] == "fail"
    assert llm["output"].startswith("no API key for Anthropic")


def test_invalid_settings_exit_3(healthy_env: dict[str, str]) -> None:
    result = run("monitor", "health", LLM_TEMPERATURE="7")
    assert result.returncode == 3
    assert "could not check" in result.stderr
    assert "LLM_TEMPERATURE: must be <= 2 (got '7')" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_subset_and_unknown_check(healthy_env: dict[str, str], stub: StubLLMServer) -> None:
    result = run("monitor", "health", "--check", "memory", "--check", "disk", "--json")
    assert set(json.loads(result.stdout)["checks"]) == {"memory:utilization", "disk:free"}
    assert stub.requests == [], "the LLM was not called"
    unknown = run("monitor", "health", "--check", "gpu")
    assert unknown.returncode == 3, "a usage error is no verdict (3), never unhealthy (2)"
    assert (
        "unknown check 'gpu' (known: database, llm, memory, disk, breakers, storage)"
        in unknown.stderr
    )


@pytest.mark.parametrize(
    "args",
    [["--jsn"], ["--fail-on", "unhealty"], ["--timeout", "0"], ["--watch", "x"], ["extra"]],
)
def test_health_usage_errors_exit_3_not_unhealthy(args: list[str]) -> None:
    # A typo in a deploy script's health gate must not read as an unhealthy service.
    result = run("monitor", "health", *args)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_caps_the_run(healthy_env: dict[str, str], stub: StubLLMServer) -> None:
    stub.push_faults("slow:5")
    started = time.perf_counter()
    result = run("monitor", "health", "--check", "llm", "--timeout", "0.5", "--json")
    assert time.perf_counter() - started < 4
    assert result.returncode == 2
    (llm,) = json.loads(result.stdout)["checks"]["llm:anthropic:responseTime"]
    assert llm["output"] == "timed out after 0.5s"


def test_results_are_recorded_in_the_store(healthy_env: dict[str, str], data_dir: Path) -> None:
    assert run("monitor", "health").returncode == 0
    store = MetricsStore(data_dir / "monitoring.db")
    now = time.time()
    window = query_window(store.connect(), now - 600, now + 60, now=now)
    store.close()
    statuses = {s.label("check"): s.value for s in window.family("assistant_health_status")}
    assert statuses == {
        "database": 1,
        "llm": 1,
        "memory": 1,
        "disk": 1,
        "breakers": 1,
        "storage": 1,
    }


def test_sigterm_during_watch_exits_143_and_loses_no_metric(
    healthy_env: dict[str, str], data_dir: Path
) -> None:
    process = subprocess.Popen(
        [
            installed_assistant(),
            "monitor",
            "health",
            "--json",
            "--watch",
            "0.2",
            "--check",
            "memory",
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for _ in range(3):
        assert json.loads(process.stdout.readline())["status"] == "pass"
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=20)
    assert process.returncode == 143, stderr
    printed = 3 + len(rest.splitlines())
    store = MetricsStore(data_dir / "monitoring.db")
    now = time.time()
    window = query_window(store.connect(), now - 600, now + 60, now=now)
    store.close()
    recorded = window.total("assistant_health_checks_total", check="memory")
    assert printed <= recorded <= printed + 1  # a round can be recorded just before the signal


def test_breakers_list_and_reset(healthy_env: dict[str, str], data_dir: Path) -> None:
    assert "No circuit breaker has tripped" in run("monitor", "breakers").stdout
    data_dir.mkdir(parents=True, exist_ok=True)
    store = BreakerStateStore(data_dir / "monitoring.db")
    CircuitBreaker("llm:anthropic", BreakerConfig(failure_threshold=1), store=store).record_failure(
        TimeoutError("read timed out")
    )
    store.close()
    listing = run("monitor", "breakers", "--json")
    (row,) = json.loads(listing.stdout)["breakers"]
    assert row["service"] == "llm:anthropic"
    assert row["state"] == "open"
    assert row["retry_in_seconds"] > 0
    assert "TimeoutError" in row["reason"]
    health = run("monitor", "health", "--check", "breakers")
    assert health.returncode == 1
    assert "llm:anthropic open" in health.stdout
    table = run("--no-color", "monitor", "breakers")
    assert "llm:anthropic" in table.stdout
    assert "open" in table.stdout
    reset = run("monitor", "breakers", "--reset", "llm:anthropic")
    assert reset.returncode == 0
    assert reset.stdout.strip() == "closed llm:anthropic"
    (row,) = json.loads(run("monitor", "breakers", "--json").stdout)["breakers"]
    assert row["state"] == "closed"
    unknown = run("monitor", "breakers", "--reset", "llm:nope")
    assert unknown.returncode == 2
    assert "no breaker named 'llm:nope' (known: llm:anthropic)" in unknown.stderr


def test_uncaught_errors_are_logged_and_counted(
    healthy_env: dict[str, str], data_dir: Path
) -> None:
    result = run("monitor", "breakers", "--reset", "llm:ghost")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    errors = [
        json.loads(line) for line in (data_dir / "logs" / "error.jsonl").read_text().splitlines()
    ]
    assert errors[-1]["exc_type"] == "UsageError"
    assert errors[-1]["context"] == "cli:monitor.breakers"
    store = MetricsStore(data_dir / "monitoring.db")
    now = time.time()
    window = query_window(store.connect(), now - 600, now + 60, now=now)
    store.close()
    assert (
        window.total("assistant_errors_total", type="UsageError", context="cli:monitor.breakers")
        == 1
    )


# A command added the way a plugin would add one, whose failure nothing foresaw: the
# CLI's last-resort handler is what is under test, through the real entry point.
_FAILING_COMMAND = """
import sys
from assistant import cli

@cli.app.command("boom")
def boom() -> None:
    raise RuntimeError("nobody saw this coming")

cli.main(sys.argv[1:])
"""


def test_unexpected_error_is_one_line_with_a_debug_hint() -> None:
    def run_failing(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _FAILING_COMMAND, *args],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
            check=False,
        )

    result = run_failing("boom")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unexpected RuntimeError: nobody saw this coming")
    assert "(run with --debug for the traceback)" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_failing("--debug", "boom")
    assert "Traceback" in debug.stderr


def test_storage_degrades_only_when_a_backup_age_is_asked_for(
    healthy_env: dict[str, str], data_dir: Path
) -> None:
    (storage,) = json.loads(run("monitor", "health", "--json", "--check", "storage").stdout)[
        "checks"
    ]["storage:size"]
    assert storage["status"] == "pass"
    assert "assistant.db" in storage["output"]
    assert "no backup in" in storage["output"]
    assert storage["observedUnit"] == "bytes"
    # Wide enough that the table does not wrap the hint (the path is a long tmp path).
    strict = run(
        "monitor", "health", "--check", "storage", MONITOR_BACKUP_MAX_AGE_DAYS="8", COLUMNS="400"
    )
    assert strict.returncode == 1, strict.stdout
    assert "run `assistant db backup" in strict.stdout
    assert run("db", "backup").returncode == 0
    fresh = run(
        "monitor", "health", "--json", "--check", "storage", MONITOR_BACKUP_MAX_AGE_DAYS="8"
    )
    assert fresh.returncode == 0, fresh.stdout
    (storage,) = json.loads(fresh.stdout)["checks"]["storage:size"]
    assert "latest backup 0.0 d ago" in storage["output"]
