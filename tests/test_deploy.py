"""scripts/deploy.sh with a real pm2: a failing health gate starts nothing, a passing one
leaves `assistant-monitor` online and answering /health."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import (
    REPO_ROOT,
    REQUIRE_TOOLS,
    installed_assistant,
    require_tool,
    subprocess_env,
)
from tests.test_serve import free_port, get

DEPLOY = REPO_ROOT / "scripts" / "deploy.sh"


def pm2_binary() -> str:
    found = shutil.which("pm2") or str(REPO_ROOT / ".tools" / "node_modules" / ".bin" / "pm2")
    if not os.access(found, os.X_OK):
        message = "pm2 is not installed (scripts/install-test-tools.sh installs it)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    if not (REPO_ROOT / ".venv" / "bin" / "assistant").exists():
        pytest.skip("ecosystem.config.js runs the repository's .venv (scripts/test.sh makes it)")
    return found


@pytest.fixture
def pm2(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """pm2 with its own home (its daemon is killed afterwards)."""
    binary = pm2_binary()
    env = {"PM2_HOME": str(tmp_path / "pm2"), "PM2": binary}
    yield binary, env
    subprocess.run(
        [binary, "kill"], env=subprocess_env(**env), capture_output=True, check=False, timeout=60
    )


def deploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY), *args],
        cwd=REPO_ROOT,
        env=subprocess_env(ASSISTANT_ENV="development", **env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def apps(binary: str, env: dict[str, str]) -> dict[str, str]:
    return {app["name"]: app["pm2_env"]["status"] for app in jlist(binary, env)}


def jlist(binary: str, env: dict[str, str]) -> list[dict[str, Any]]:
    listing = subprocess.run(
        [binary, "jlist"],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # A new pm2 daemon prints its banner first: the JSON is the last line.
    document = [line for line in listing.stdout.splitlines() if line.startswith("[")][-1]
    found: list[dict[str, Any]] = json.loads(document)
    return found


class HealthProbe(threading.Thread):
    """GET /health on a new connection every 50 ms; remembers every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _, _ = get(self.url)
            except OSError as error:
                self.failures.append(repr(error))
            else:
                if status == 200:
                    self.answered += 1
                else:
                    self.failures.append(f"HTTP {status}")
            time.sleep(0.05)


def test_usage_errors_start_nothing() -> None:
    unknown = deploy("qa")
    assert unknown.returncode == 2
    assert "unknown environment 'qa'" in unknown.stderr
    missing_pm2 = deploy("development", PM2="/nonexistent/pm2", PATH="/usr/bin:/bin")
    assert missing_pm2.returncode == 2
    assert "pm2 not found" in missing_pm2.stderr


def test_failed_health_gate_starts_nothing(pm2: tuple[str, dict[str, str]], data_dir: Path) -> None:
    binary, env = pm2
    result = deploy("development", **env, MONITOR_PORT=str(free_port()))  # no API key
    assert result.returncode == 1
    assert "Health checks failed, aborting deployment" in result.stderr
    assert "no API key" in result.stdout
    assert "assistant-monitor" not in apps(binary, env)


def test_stub_500_fails_the_gate(pm2: tuple[str, dict[str, str]], data_dir: Path) -> None:
    binary, env = pm2
    with StubLLMServer(error_rate=1.0) as stub:
        result = deploy(
            "development",
            **env,
            LLM_BASE_URL=stub.url,
            LLM_API_KEY="sk-deploy-000000000000",
            MONITOR_PORT=str(free_port()),
        )
    assert result.returncode == 1
    assert "Health checks failed" in result.stderr
    assert "assistant-monitor" not in apps(binary, env)


def test_passing_deploy_is_online_and_answers(
    pm2: tuple[str, dict[str, str]], data_dir: Path
) -> None:
    binary, env = pm2
    port = free_port()
    with StubLLMServer() as stub:
        result = deploy(
            "development",
            **env,
            LLM_BASE_URL=stub.url,
            LLM_API_KEY="sk-deploy-000000000000",
            MONITOR_PORT=str(port),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "deployed: assistant-monitor" in result.stdout
        assert apps(binary, env)["assistant-monitor"] == "online"
        status, _, body = get(f"http://127.0.0.1:{port}/health")
        assert status == 200
        assert json.loads(body)["status"] == "pass"
        before = {app["pid"] for app in jlist(binary, env)}
        assert len(before) == 2, "two instances share the port"
        # A second deploy is a `pm2 reload`: /health answers all the way through it.
        probe = HealthProbe(f"http://127.0.0.1:{port}/health")
        probe.start()
        again = deploy(
            "development",
            **env,
            LLM_BASE_URL=stub.url,
            LLM_API_KEY="sk-deploy-000000000000",
            MONITOR_PORT=str(port),
        )
        time.sleep(1)
        probe.stop.set()
        probe.join(timeout=20)
        assert again.returncode == 0, again.stderr
        assert "reload" in again.stdout, again.stdout
        after = jlist(binary, env)
        assert {app["pm2_env"]["status"] for app in after} == {"online"}
        assert not before & {app["pid"] for app in after}, "both instances were replaced"
        assert probe.failures == [], probe.failures[:5]
        assert probe.answered > 20
        # The old processes stopped cleanly on pm2's SIGINT (130, as after Ctrl-C; a
        # process killed on a kill_timeout would show SIGKILL's 137 or a crash's 1).
        codes = [app["pm2_env"].get("exit_code") for app in after]
        assert codes == [130, 130], codes
    subprocess.run(
        [binary, "delete", "assistant-monitor"],
        env=subprocess_env(**env),
        check=True,
        capture_output=True,
    )
    assert "assistant-monitor" not in apps(binary, env)


def test_the_weekly_backup_examples_run_a_real_command(tmp_path: Path) -> None:
    """The systemd timer's service and the pm2 cron app both run `assistant db backup`
    with options the CLI accepts (checked by running them, pointed at a temp dir)."""
    unit = (REPO_ROOT / "deploy" / "systemd" / "assistant-backup.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[1:4] == ["db", "backup", "/var/backups/assistant"]
    timer = (REPO_ROOT / "deploy" / "systemd" / "assistant-backup.timer").read_text()
    assert "OnCalendar=Sun *-*-* 03:30:00" in timer
    assert "Persistent=true" in timer
    node = require_tool("node")
    listing = subprocess.run(
        [
            node,
            "-e",
            "console.log(JSON.stringify(require(process.argv[1])))",
            str(REPO_ROOT / "deploy" / "pm2" / "backup.config.js"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    (app,) = json.loads(listing.stdout)["apps"]
    assert app["cron_restart"] == "30 3 * * 0"
    assert app["autorestart"] is False
    args = app["args"].split()
    assert args[:2] == ["db", "backup"]
    # Both commands, as written, work (into a temporary folder instead of theirs).
    from tests.test_db_check import healthy

    healthy(Path(os.environ["ASSISTANT_DATA_DIR"]))
    for command in (["db", "backup", str(tmp_path / "systemd"), *argv[4:]], [*args, "--json"]):
        result = subprocess.run(
            [installed_assistant(), *command],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (command, result.stderr)
