"""An interrupted run tells one story everywhere: runs table, metrics and log agree.

SIGTERM on `assistant chat` mid-answer used to leave the run `running` forever,
while metrics counted a failure and an LLM error with a retry, and the log said
"retrying": the clean-up closed the HTTP client under the request in flight. Now the
signal cancels the work where it is and the run ends `interrupted`, once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.runs import RunRecord, RunStore, longest_run_seconds
from assistant_monitoring.settings import load_settings
from tests.conftest import installed_assistant, metrics_window, run_assistant, subprocess_env


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def keyed(stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch) -> StubLLMServer:
    monkeypatch.setenv("LLM_BASE_URL", stub.url)
    monkeypatch.setenv("LLM_API_KEY", "sk-test-0000000000000000")
    return stub


def runs() -> list[dict[str, Any]]:
    result = run_assistant("monitor", "runs", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["runs"])


def log_lines(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "logs" / "assistant.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_chat(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [installed_assistant(), "chat", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(LLM_MAX_RETRIES="3"),
    )
    assert process.stdin is not None
    process.stdin.write("tell me a long story about write-ahead logs\n")
    process.stdin.flush()
    return process


def wait_for_generate(data_dir: Path, process: subprocess.Popen[str]) -> None:
    """Until the run is in its generate stage: both classifiers have logged."""
    path = data_dir / "logs" / "assistant.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        text = path.read_text() if path.exists() else ""
        if text.count('"event":"classification"') >= 2:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never reached its generate stage (exit {process.poll()})")


def stop(process: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    time.sleep(0.6)  # the request is in flight
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=10)
    return process.returncode, stderr


def assert_one_interrupted_story(data_dir: Path, *, by: str) -> None:
    (run,) = runs()
    assert run["status"] == "interrupted"
    assert run["finished_at"] > run["started_at"] > 0
    assert run["error_type"] == "Interrupted"
    assert run["error_message"] == f"interrupted by {by}"
    assert run["failed_stage"] == "generate"
    assert run["retries"] == 0
    metrics = metrics_window(data_dir)
    assert metrics.total("assistant_pipeline_runs_total", status="interrupted") == 1
    assert metrics.total("assistant_pipeline_runs_total", status="failure") == 0
    assert metrics.total("assistant_stage_runs_total", stage="generate", status="failure") == 0
    assert metrics.total("assistant_llm_requests_total", status="interrupted") == 1
    assert metrics.total("assistant_llm_requests_total", status="error") == 0
    assert metrics.total("assistant_llm_retries_total") == 0
    assert metrics.total("assistant_errors_total") == 0, "an interruption is not an error"
    lines = log_lines(data_dir)
    assert not [line for line in lines if "retrying" in line["msg"]]
    summaries = [line for line in lines if line.get("event") == "pipeline_summary"]
    assert [s["status"] for s in summaries] == ["interrupted"]
    assert summaries[0]["level"] == "WARNING"


@pytest.mark.parametrize(
    ("signum", "code", "by", "plan"),
    [
        # The answer is still streaming when the signal comes.
        (signal.SIGTERM, 143, "SIGTERM", {"stream_delay": 0.2}),
        # The request still waits for its answer: closing the client under it used
        # to fail it as a connection error, which was then retried and counted.
        (signal.SIGTERM, 143, "SIGTERM", {"latency": 3.0}),
        (signal.SIGINT, 130, "SIGINT", {"stream_delay": 0.2}),
    ],
    ids=["sigterm-mid-stream", "sigterm-before-first-token", "ctrl-c-mid-stream"],
)
def test_a_signal_mid_answer_ends_the_run_interrupted_everywhere(
    keyed: StubLLMServer,
    data_dir: Path,
    signum: int,
    code: int,
    by: str,
    plan: dict[str, float],
) -> None:
    for name, value in plan.items():
        setattr(keyed.plan, name, value)
    process = start_chat()
    wait_for_generate(data_dir, process)
    exit_code, stderr = stop(process, signum)
    assert exit_code == code, stderr
    assert "Traceback" not in stderr
    assert_one_interrupted_story(data_dir, by=by)
    assert len([r for r in keyed.requests if r.path.endswith("/messages")]) <= 1, "no retry"


def test_sigkill_leaves_a_running_row_that_is_not_running_forever(
    keyed: StubLLMServer, data_dir: Path
) -> None:
    keyed.plan.stream_delay = 0.2
    process = start_chat()
    wait_for_generate(data_dir, process)
    process.kill()
    process.communicate(timeout=10)
    (run,) = runs()
    assert run["status"] == "running", "started moments ago: it could still be running"
    # Later than the longest a run can take, the same row reads as abandoned.
    settings = load_settings().settings
    limit = longest_run_seconds(settings)
    later = RunStore(
        data_dir / "monitoring.db",
        abandon_after=limit,
        clock=lambda: run["started_at"] + limit + 1,
    )
    try:
        (shown,) = later.query()
        assert shown.status == "abandoned"
        assert [r.id for r in later.query(status="abandoned")] == [run["id"]]
        assert later.query(status="running") == []
        assert later.get(run["id"][:12]).status == "abandoned"  # type: ignore[union-attr]
    finally:
        later.close()


def test_longest_run_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    base = longest_run_seconds(load_settings().settings)
    monkeypatch.setenv("LLM_TIMEOUT", "120")
    assert longest_run_seconds(load_settings().settings) == pytest.approx(base + 60 * 4)


def test_runs_started_now_are_running_and_old_ones_abandoned(data_dir: Path) -> None:
    path = data_dir / "monitoring.db"
    store = RunStore(path, abandon_after=600, clock=lambda: 10_000.0)
    try:
        store.record(RunRecord(id="run_new", started_at=9_900.0))
        store.record(RunRecord(id="run_old", started_at=9_000.0))
        store.record(RunRecord(id="run_done", started_at=1_000.0, status="success"))
        shown = {run.id: run.status for run in store.query()}
        assert shown == {"run_new": "running", "run_old": "abandoned", "run_done": "success"}
    finally:
        store.close()
