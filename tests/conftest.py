"""Shared fixtures: every test runs in its own profile and data directory.

An autouse fixture points the profile at the committed ``.env.test``, the data
directory at ``tmp_path`` and the working directory at an empty folder, and clears
every setting the developer's shell may export, so no test reads or writes a real
user's files or keys.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from loguru import logger

if TYPE_CHECKING:
    from assistant_monitoring.metrics.query import WindowData

REPO_ROOT = Path(__file__).resolve().parent.parent
# OTEL_ and TRACEPARENT: a shell or a CI job that exports to its own collector.
_SETTING_PREFIXES = ("LLM_", "DATABASE_", "LOG_", "MONITOR", "ENABLE_", "ASSISTANT_", "OTEL_")
_EXTRA_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DEBUG_MODE", "NO_COLOR", "TRACEPARENT")

# Tests that need an external tool skip without it, except under CI, where
# .ci/run sets ASSISTANT_REQUIRE_TOOLS=1 and a missing tool is a failure.
REQUIRE_TOOLS = os.environ.get("ASSISTANT_REQUIRE_TOOLS") == "1"


def require_tool(name: str) -> str:
    """The path of ``name``; skip the test when missing locally, fail under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test.sh installs it)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return path


def installed_assistant() -> str:
    """The ``assistant`` console script of the environment running the tests."""
    candidate = Path(sys.executable).parent / "assistant"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("assistant")
    if found is None:
        pytest.fail("the assistant console script is not installed: pip install -e .")
    return found


@pytest.fixture(autouse=True)
def isolated_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Use the test profile, with all data under ``tmp_path / 'data'``."""
    for name in list(os.environ):
        if name.startswith(_SETTING_PREFIXES) or name in _EXTRA_VARS:
            monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    work_dir = tmp_path / "cwd"
    work_dir.mkdir()
    monkeypatch.chdir(work_dir)
    monkeypatch.setenv("ASSISTANT_ENV", "test")
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(REPO_ROOT))
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    yield data_dir
    reset_process_state()


def reset_process_state() -> None:
    """What a command leaves in this process, undone, as a new process would start."""
    from assistant_monitoring import runs, tracing
    from assistant_monitoring.cli.state import reset_state
    from assistant_monitoring.gitinfo import current_git_place
    from assistant_monitoring.redact import clear_registered_secrets
    from assistant_monitoring.sqlitefile import (
        DEFAULT_BUSY_TIMEOUT_MS,
        forget_lock_timeouts,
        use_busy_timeout,
    )
    from assistant_monitoring.stopping import clear_stop_request

    reset_state()
    clear_registered_secrets()
    # Read once per process: a new process reads them again.
    runs._SESSION_ID.clear()
    current_git_place.cache_clear()
    tracing._process_parent.clear()
    # Process-wide: a test that stopped a command in process, or loaded a profile
    # with another busy timeout, must not change how the next test waits for locks.
    clear_stop_request()
    use_busy_timeout(DEFAULT_BUSY_TIMEOUT_MS)
    forget_lock_timeouts()
    logger.remove()


@pytest.fixture
def data_dir(isolated_profile: Path) -> Path:
    """The test's data directory (not created yet)."""
    return isolated_profile


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The current (isolated) environment plus ``overrides``, for child processes."""
    env = dict(os.environ)
    env.update(overrides)
    return env


# The model the OpenAI-provider tests ask for.
OPENAI_MODEL = "gpt-4.1"


def openai_env(stub_url: str) -> dict[str, str]:
    """Settings that send ``ask`` to the stub through the OpenAI provider.

    For the tests in which the provider is not what is tested (exports, signals,
    locks): the pipeline and everything around the call are the same under either
    provider, and the openai SDK imports in ~0.5 s where anthropic's takes ~1.4 s
    (BENCHMARKS.md, issue 22). tests/test_assistant_e2e.py runs both providers.
    """
    return {"LLM_PROVIDER": "openai", "LLM_MODEL": OPENAI_MODEL, "LLM_BASE_URL": f"{stub_url}/v1"}


# Thresholds that make the memory and disk checks pass whatever the machine's state.
HEALTHY_THRESHOLDS = {
    "HEALTH_DISK_DEGRADED_FREE_PERCENT": "0",
    "HEALTH_DISK_UNHEALTHY_FREE_PERCENT": "0",
    "HEALTH_MEMORY_DEGRADED_PERCENT": "100",
    "HEALTH_MEMORY_UNHEALTHY_PERCENT": "100",
}


def make_healthy(
    data_dir: Path, stub_url: str, monkeypatch: pytest.MonkeyPatch, *, key: str
) -> dict[str, str]:
    """A data dir with a database, the LLM at ``stub_url``: every health check passes."""
    import sqlite3

    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir / "assistant.db") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    env = {"LLM_BASE_URL": stub_url, "LLM_API_KEY": key, **HEALTHY_THRESHOLDS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def flush_into_store(data_dir: Path, instrumentation: object) -> None:
    """Write what ``instrumentation`` recorded into ``data_dir``'s monitoring.db."""
    from assistant_monitoring.metrics.instrument import Instrumentation
    from assistant_monitoring.metrics.runtime import MetricsRuntime
    from assistant_monitoring.metrics.store import MetricsStore

    assert isinstance(instrumentation, Instrumentation)
    store = MetricsStore(data_dir / "monitoring.db")
    try:
        assert MetricsRuntime(instrumentation, store).flush()
    finally:
        store.close()


def run_assistant(
    *args: str, stdin: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``assistant`` as a user would, with ``env`` on top of this one."""
    return subprocess.run(
        [installed_assistant(), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=subprocess_env(**env),
        timeout=timeout,
        check=False,
    )


def metrics_window(data_dir: Path, seconds: float = 3600) -> WindowData:
    """What ``data_dir``'s monitoring.db holds for the last ``seconds``."""
    from assistant_monitoring.metrics.query import query_window
    from assistant_monitoring.metrics.store import MetricsStore

    store = MetricsStore(data_dir / "monitoring.db")
    now = time.time()
    try:
        return query_window(store.connect(), now - seconds, now + 60, now=now)
    finally:
        store.close()


def _clean_environment() -> dict[str, str]:
    """This process's environment without the developer's settings (as isolated_profile)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SETTING_PREFIXES) and name not in _EXTRA_VARS
    }


@pytest.fixture(scope="session")
def answered_once_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory as one answered `ask` leaves it (both databases migrated, a
    conversation, a run, metrics, log lines), made once per session by the installed
    CLI against the stub LLM; tests get a copy (``answered_once``)."""
    from assistant.stubllm import StubLLMServer

    root = tmp_path_factory.mktemp("answered-once")
    data = root / "data"
    work = root / "cwd"
    work.mkdir()
    with StubLLMServer() as stub:
        env = {
            **_clean_environment(),
            "ASSISTANT_ENV": "test",
            "ASSISTANT_CONFIG_DIR": str(REPO_ROOT),
            "ASSISTANT_DATA_DIR": str(data),
            "LLM_BASE_URL": stub.url,
            "LLM_API_KEY": "sk-test-0000000000000000",
        }
        result = subprocess.run(
            [installed_assistant(), "ask", "warm up"],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture
def answered_once(data_dir: Path, answered_once_template: Path) -> Path:
    """This test's data directory, a copy of ``answered_once_template``."""
    shutil.copytree(answered_once_template, data_dir)
    return data_dir


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI's entry point in-process: (exit code, stdout, stderr)."""
    from assistant.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def run_cli(
    *args: str, stdin: str | None = None, timeout: float | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``run_assistant``'s twin in this process, for what needs no process of its own.

    The console script's entry point (``assistant.cli.main``) with ``env`` set for this
    one command, ``stdin`` as its input and its output captured; what the command left
    in the process is then reset, as a new process would start. ``timeout`` is
    accepted for symmetry (pytest-timeout bounds a test). For what needs a real
    process (start-up, signals, a kill, the exit, several at once) use
    ``run_assistant``.
    """
    from assistant.cli import main

    del timeout
    saved = {name: os.environ.get(name) for name in env}
    out, err = io.StringIO(), io.StringIO()
    real_stdin = sys.stdin
    os.environ.update(env)
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code: object = 0
            except SystemExit as exit_info:
                code = exit_info.code
    finally:
        sys.stdin = real_stdin
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_process_state()
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(list(args), returncode, out.getvalue(), err.getvalue())


# The heaviest work first, so that under pytest-xdist the short tests fill both
# workers at the end instead of one worker finishing a fault-matrix row alone.
_FIRST = ("tests/test_fault_matrix.py", "tests/test_locks.py", "tests/test_assistant_e2e.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return _FIRST.index(path) if path in _FIRST else len(_FIRST)

    items.sort(key=weight)  # stable: each file keeps its order
