"""The LLM client built on first use, on a bad day (issue 23's DeferredProvider).

The provider's SDK is imported when the first call that will be made needs it, not
when an open breaker refuses the call. That moves the import to wherever the
breaker lets calls through again: a chat whose breaker was open when it started,
or a breaker that turned half-open between ``prepare()`` and the call. There the
import must stay out of what is timed (the run's stages, the attempt, the time to
first token), and an SDK that fails to import must not count as the provider's
answer to a half-open trial (which would close the breaker with no request sent).

The SDK's import is made slow, or made to fail, by a module of the same name put
first on ``PYTHONPATH`` (the slow one then loads the real SDK): real processes, the
real stores, the stub server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.breaker import BreakerConfig, BreakerStateStore, CircuitBreaker
from assistant_monitoring.metrics.store import MetricsStore
from tests.conftest import OPENAI_MODEL, installed_assistant, openai_env, run_assistant

KEY = "sk-test-bad-day-0000000000000000"
SERVICE = "llm:openai"
IMPORT_SECONDS = 3.0

# An `openai` that takes IMPORT_SECONDS to import, then is the real one.
_SLOW_SDK = """
import importlib, os, sys, time
open(os.environ["IMPORT_MARK"], "w").write("importing")
time.sleep(float(os.environ["IMPORT_SECONDS"]))
_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules["openai"]
sys.modules["openai"] = importlib.import_module("openai")
"""
# An `openai` that cannot be imported (a broken install, half an upgrade).
_BROKEN_SDK = 'raise ImportError("openai is broken in this environment (test)")\n'


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


def shadow_sdk(root: Path, source: str) -> Path:
    """A directory to put first on PYTHONPATH, holding an `openai` made of ``source``."""
    package = root / "shadow" / "openai"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    return package.parent


def open_breaker(data_dir: Path) -> None:
    """The OpenAI breaker open in monitoring.db, its retry an hour away."""
    data_dir.mkdir(parents=True, exist_ok=True)
    MetricsStore(data_dir / "monitoring.db").connect()  # migrated, as a command leaves it
    store = BreakerStateStore(data_dir / "monitoring.db")
    try:
        config = BreakerConfig(failure_threshold=1, reset_timeout=3600)
        breaker = CircuitBreaker(SERVICE, config, store=store)
        breaker.reset()  # from whatever an earlier step left
        breaker.record_failure(ConnectionError("down"))
    finally:
        store.close()


def make_due_for_trial(data_dir: Path) -> None:
    """The open breaker's retry time reached: the next call is its half-open trial."""
    store = BreakerStateStore(data_dir / "monitoring.db")
    try:
        now = time.time()
        store.update(SERVICE, lambda s: replace(s, retry_at=now - 1, updated_at=now))
    finally:
        store.close()


def breaker_row(data_dir: Path) -> tuple[str, int]:
    with sqlite3.connect(data_dir / "monitoring.db") as conn:
        row = conn.execute(
            "SELECT state, trips FROM breakers WHERE service = ?", (SERVICE,)
        ).fetchone()
    return str(row[0]), int(row[1])


def final_runs(data_dir: Path) -> int:
    """How many runs ended (pipeline_runs)."""
    with sqlite3.connect(data_dir / "monitoring.db") as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM pipeline_runs WHERE status != 'running'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def runs() -> list[dict[str, Any]]:
    result = run_assistant("monitor", "runs", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    return list(reversed(json.loads(result.stdout)["runs"]))  # oldest first


def sdk_env(stub: StubLLMServer, sdk: Path, mark: Path, **extra: str) -> dict[str, str]:
    """A chat on the OpenAI provider whose ``openai`` is the shadow module in ``sdk``
    (it touches ``mark`` when its import begins and takes IMPORT_SECONDS)."""
    return {
        **openai_env(stub.url),
        "LLM_API_KEY": KEY,
        "PYTHONPATH": str(sdk),
        "IMPORT_MARK": str(mark),
        "IMPORT_SECONDS": str(IMPORT_SECONDS),
        **extra,
    }


def chat(env: dict[str, str]) -> subprocess.Popen[str]:
    from tests.conftest import subprocess_env

    return subprocess.Popen(
        [installed_assistant(), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(**env),
    )


def say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def wait_for_runs(data_dir: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if final_runs(data_dir) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"chat never finished message {count} (exit {process.poll()})")


def refused_then_let_through(
    data_dir: Path, stub: StubLLMServer, sdk: Path, let_through: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """A chat whose first message the open breaker refuses; then the breaker lets calls
    through (``reset`` by hand, or ``trial``: its retry time reached) and a second
    message is sent. Returns the chat's outcome and the file the SDK's import marks."""
    open_breaker(data_dir)
    mark = data_dir.parent / "imported"
    env = sdk_env(stub, sdk, mark, LLM_MAX_RETRIES="0")
    process = chat(env)
    try:
        say(process, "first")
        wait_for_runs(data_dir, 1, process)
        assert not mark.exists(), "a refused message imports no SDK"
        if let_through == "reset":
            reset = run_assistant("monitor", "breakers", "--reset", SERVICE)
            assert reset.returncode == 0, reset.stderr
        else:
            make_due_for_trial(data_dir)
        time.sleep(1.2)  # the chat re-reads shared breaker state once a second
        say(process, "second")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(["chat"], process.returncode, out, err), mark


def test_chat_imports_the_sdk_outside_the_run_once_the_breaker_lets_calls_through(
    data_dir: Path, stub: StubLLMServer, tmp_path: Path
) -> None:
    result, mark = refused_then_let_through(
        data_dir, stub, shadow_sdk(tmp_path, _SLOW_SDK), "reset"
    )
    assert result.returncode == 1, result.stderr  # the first message failed
    assert "circuit open" in result.stderr
    assert "stub model answering: second" in result.stdout
    assert mark.exists(), "the client was built once the breaker let calls through"
    refused, answered = runs()
    assert refused["error_type"] == "CircuitOpenError"
    assert answered["status"] == "success"
    stages = {stage["name"]: stage["duration_ms"] for stage in answered["stages"]}
    # The import took IMPORT_SECONDS; the stub answers in milliseconds.
    limit_ms = IMPORT_SECONDS * 1000 * 2 / 3
    assert stages["generate"] < limit_ms, f"the SDK import was timed as generate: {stages}"
    assert answered["ttft_ms"] < limit_ms, "the SDK import was timed as time to first token"
    assert answered["duration_ms"] < limit_ms
    assert KEY not in result.stdout + result.stderr


def test_an_sdk_that_fails_to_import_is_not_a_successful_half_open_trial(
    data_dir: Path, stub: StubLLMServer, tmp_path: Path
) -> None:
    result, _ = refused_then_let_through(data_dir, stub, shadow_sdk(tmp_path, _BROKEN_SDK), "trial")
    assert result.returncode == 1
    assert not stub.requests, "nothing reached the provider"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors[-1].startswith("error: unexpected ImportError: openai is broken"), errors
    assert "Traceback" not in result.stderr
    assert KEY not in result.stdout + result.stderr
    refused, broken = runs()
    assert refused["error_type"] == "CircuitOpenError"
    assert (broken["status"], broken["failed_stage"]) == ("failure", "generate")
    assert broken["error_type"] == "ImportError"
    state, trips = breaker_row(data_dir)
    # No answer came from the provider: the breaker still waits for a real trial.
    assert state != "closed", "an SDK import failure closed the breaker"
    assert trips == 1


def test_the_client_imports_the_sdk_before_the_call_is_timed_or_judged(
    data_dir: Path, stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker turned half-open between prepare() and the call (the race)."""
    from assistant.app import AssistantApp
    from assistant.providers import DeferredProvider, GenerationRequest, Provider
    from assistant.providers.base import ChatMessage
    from assistant_monitoring.metrics import LlmCall
    from assistant_monitoring.settings import load_settings

    for name, value in {**openai_env(stub.url), "LLM_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings().settings
    built: list[str] = []

    def slow_build() -> Provider:  # what importing the SDK costs, then the real client
        from assistant.providers.openai_provider import OpenAIProvider

        time.sleep(IMPORT_SECONDS)
        built.append("openai")
        return OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1", timeout=30)

    def broken_build() -> Provider:
        raise ImportError("openai is broken in this environment (test)")

    request = GenerationRequest(
        model=OPENAI_MODEL,
        messages=[ChatMessage("user", "hello")],
        max_tokens=64,
        temperature=0.0,
    )

    async def ask(build: Any) -> tuple[BaseException | None, list[LlmCall]]:
        open_breaker(data_dir)
        app = await AssistantApp.open(settings, provider=DeferredProvider("openai", build))
        calls: list[LlmCall] = []
        try:
            app.llm.prepare()
            assert not built, "prepare() builds nothing while the breaker refuses"
            make_due_for_trial(data_dir)  # ...and now it lets a trial through
            time.sleep(1.2)  # a breaker re-reads shared state once a second
            try:
                await app.llm.generate(request, on_call=calls.append)
            except Exception as error:
                return error, calls
            return None, calls
        finally:
            await app.close()

    error, _ = asyncio.run(ask(broken_build))
    assert isinstance(error, ImportError)
    assert breaker_row(data_dir)[0] != "closed", "an SDK import failure closed the breaker"
    assert not stub.requests

    error, calls = asyncio.run(ask(slow_build))
    assert error is None
    assert built == ["openai"]
    (call,) = calls
    assert call.ttft is not None
    assert call.ttft < IMPORT_SECONDS * 2 / 3, "the SDK import was timed as the call's"
    assert breaker_row(data_dir)[0] == "closed", "the trial succeeded"


def test_ask_with_an_sdk_that_fails_to_import_is_a_failed_run(
    data_dir: Path, stub: StubLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like a missing key: the run fails in its generate stage and is recorded so."""
    sdk = shadow_sdk(tmp_path, _BROKEN_SDK)
    env = {**openai_env(stub.url), "LLM_API_KEY": KEY, "PYTHONPATH": str(sdk)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run_assistant("ask", "hello")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: unexpected ImportError: openai is broken in this environment (test) "
        "(run with --debug for the traceback)"
    ]
    assert not stub.requests
    (run,) = runs()
    assert run["status"] == "failure"
    assert run["failed_stage"] == "generate"
    assert run["error_type"] == "ImportError"
    with sqlite3.connect(data_dir / "monitoring.db") as conn:
        rows = conn.execute("SELECT state, failures FROM breakers WHERE service = ?", (SERVICE,))
        assert rows.fetchall() in ([], [("closed", 0)]), "the provider was never asked"


# An `openai` that fails to import after a while (a SIGTERM arrives meanwhile).
_SLOW_BROKEN_SDK = """
import os, time
open(os.environ["IMPORT_MARK"], "w").write("importing")
time.sleep(float(os.environ["IMPORT_SECONDS"]))
raise ImportError("openai is broken in this environment (test)")
"""


def test_sigterm_during_the_late_sdk_import_ends_the_chat_as_interrupted(
    data_dir: Path, stub: StubLLMServer, tmp_path: Path
) -> None:
    """Seen before the fix: exit 1, "unexpected RuntimeError: Event loop stopped
    before Future completed", and the run recorded as an ImportError failure."""
    open_breaker(data_dir)
    mark = tmp_path / "imported"
    env = sdk_env(stub, shadow_sdk(tmp_path, _SLOW_BROKEN_SDK), mark)
    process = chat(env)
    try:
        say(process, "first")
        wait_for_runs(data_dir, 1, process)
        make_due_for_trial(data_dir)
        time.sleep(1.2)  # the chat re-reads shared breaker state once a second
        say(process, "second")
        deadline = time.monotonic() + 60
        while not mark.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert mark.exists(), "the SDK import began"
        process.send_signal(signal.SIGTERM)
        # The loop acts once the (synchronous) import is over: bounded by it.
        _, err = process.communicate(timeout=IMPORT_SECONDS + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert "RuntimeError" not in err
    assert not stub.requests
    refused, stopped = runs()
    assert refused["error_type"] == "CircuitOpenError"
    assert stopped["status"] == "interrupted"
    assert breaker_row(data_dir)[0] != "closed"
