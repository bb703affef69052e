"""Every sink, swept at once: a distinctive secret in each place secrets hide, then a
grep of everything the installed CLI wrote, printed or served (README "Secrets").

The places: the configured key (LLM_API_KEY, of no known shape, so only its
registration can find it), the password of LLM_BASE_URL and of ALERT_WEBHOOK_URL,
MONITOR_TOKEN, an OTLP header variable, a key pasted as --model, as --conversation,
as extra arguments of a usage error and as ASSISTANT_SESSION_ID, and the configured
key in prompt text with LOG_CONTENT=true.

The sinks: stdout and stderr of every command, every file under the data directory
(the log files and both databases, read as bytes, and a `db backup`), `/api/runs` and
`/metrics` of `monitor serve`, `monitor runs` (and `show`), `monitor usage --csv`
and `--json`, `monitor logs`, `monitor metrics`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import HEALTHY_THRESHOLDS, run_assistant
from tests.test_serve import get, start_server, stop_server

KEY = "e2eKey-Zq81VtPm3Wx6Ls0R"
URL_PASSWORD = "e2eUrlPw-4Hf7Ks"
HOOK_PASSWORD = "e2eHookPw-9Gd2Tm"
MONITOR_TOKEN = "e2eMonTok-Bn5Rq8Ye3Wc1"
HEADER_TOKEN = "e2eHdrTok-Vx7Lp2Nd6Qs"
MODEL_PASTE = "sk-ant-api03-e2eModelPaste0123456789"
CONVERSATION_PASTE = "sk-ant-api03-e2eConvPaste01234567890"
EXTRA_PASTE = "sk-ant-api03-e2eExtraArg012345678901"
SESSION_PASTE = "sk-proj-e2eSessionPaste0123456789ab"
SECRETS = (
    KEY,
    URL_PASSWORD,
    HOOK_PASSWORD,
    MONITOR_TOKEN,
    HEADER_TOKEN,
    MODEL_PASTE,
    CONVERSATION_PASTE,
    EXTRA_PASTE,
    SESSION_PASTE,
)


def fragments(secret: str) -> list[str]:
    """The secret, and its halves: a table that folds a long value splits it."""
    half = len(secret) // 2
    return [secret, secret[:half], secret[half:]]


class Sinks:
    """Everything printed or served, by where it came from."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.outputs.append((where, text))

    def run(self, *args: str, expect: int | None = 0, stdin: str | None = None, **env: str) -> str:
        """Run the installed CLI; keep its stdout and stderr; return stdout."""
        result: subprocess.CompletedProcess[str] = run_assistant(*args, stdin=stdin, **env)
        where = "assistant " + " ".join(args)
        self.add(f"{where} (stdout)", result.stdout)
        self.add(f"{where} (stderr)", result.stderr)
        if expect is not None:
            assert result.returncode == expect, f"{where}: {result.stdout}{result.stderr}"
        return result.stdout

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.outputs:
            for secret in SECRETS:
                if any(part in text for part in fragments(secret)):
                    found.append(f"{secret} in {where}")
        return found


def file_leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        for secret in SECRETS:
            if any(part.encode() in content for part in fragments(secret)):
                found.append(f"{secret} in {path.relative_to(root)}")
    return found


@pytest.mark.slow
def test_no_secret_reaches_any_sink(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sinks = Sinks()
    with StubLLMServer(required_key=KEY) as stub:
        settings = {
            "LLM_API_KEY": KEY,
            "LLM_BASE_URL": stub.url,
            "LLM_MODEL": "claude-haiku-4-5",
            "MONITOR_TOKEN": MONITOR_TOKEN,
            "ALERT_WEBHOOK_URL": f"https://hooks:{HOOK_PASSWORD}@hooks.example.com/alert",
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{HEADER_TOKEN}",
            "ASSISTANT_SESSION_ID": SESSION_PASTE,
            "LOG_CONTENT": "true",
            "LOG_LEVEL": "DEBUG",
            "COLUMNS": "250",
            **HEALTHY_THRESHOLDS,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        with_userinfo = stub.url.replace("http://", f"http://user:{URL_PASSWORD}@")

        # The settings, shown and checked, with and without the URL's password.
        sinks.run("config", "show")
        sinks.run("config", "show", "--json")
        sinks.run("config", "check")
        sinks.run("config", "show", LLM_BASE_URL=with_userinfo)
        sinks.run("monitor", "health", "--json", expect=2, LLM_BASE_URL=with_userinfo)
        sinks.run("monitor", "health", expect=2, LLM_BASE_URL=with_userinfo)
        sinks.run("ask", "hello", expect=2, LLM_BASE_URL=with_userinfo)
        sinks.run("--debug", "ask", "hello", expect=2, LLM_BASE_URL=with_userinfo)

        # Keys pasted where names, ids and arguments go.
        sinks.run("ask", "--model", MODEL_PASTE, "hello", expect=2)
        sinks.run("ask", "--model", KEY, "hello", expect=2)
        sinks.run("--debug", "ask", "--model", KEY, "hello", expect=2)  # and its traceback
        sinks.run("ask", "--conversation", CONVERSATION_PASTE, "hello", expect=2)
        sinks.run("ask", "a", "b", EXTRA_PASTE, expect=2)
        sinks.run("ask", "a", "b", KEY, expect=2)
        sinks.run("monitor", "runs", "--limit", EXTRA_PASTE, expect=2)

        # The configured key in prompt text, stored with LOG_CONTENT=true, in every mode.
        question = f"my key is {KEY}, is it valid?"
        sinks.run("ask", question)
        sinks.run("ask", "--no-stream", question)
        answer = json.loads(sinks.run("ask", "--json", question))
        sinks.run("ask", "--conversation", answer["conversation_id"], f"and {KEY} again?")
        sinks.run("chat", stdin=f"{question}\n/stats\n/exit\n")
        stub.push_faults("500", "500", "500", "500")  # a failed run and its error
        sinks.run("ask", question, expect=1, LLM_MAX_RETRIES="3")

        # Every report.
        runs = json.loads(sinks.run("monitor", "runs", "--json"))["runs"]
        assert runs, "the runs were recorded"
        sinks.run("monitor", "runs")
        for run in runs:
            sinks.run("monitor", "runs", "show", run["id"])
        for group in ("daily", "session", "model", "conversation"):
            sinks.run("monitor", "usage", group, "--csv")
            sinks.run("monitor", "usage", group, "--json")
        sinks.run("monitor", "logs", "-n", "100000")
        sinks.run("monitor", "logs", "--json", "-n", "100000")
        sinks.run("monitor", "logs", "--level", "error", "--json")
        sinks.run("monitor", "metrics", "--period", "1h")
        sinks.run("monitor", "health", "--json", expect=None)  # its verdict is not the point
        sinks.run("db", "backup")

        # HTTP answers.
        process, url = start_server()
        try:
            authorization = {"Authorization": f"Bearer {MONITOR_TOKEN}"}
            for path in ("/api/runs?limit=100", "/metrics", "/api/metrics", "/health"):
                status, _, body = get(url + path, authorization)
                assert status == 200, (path, body)
                sinks.add(f"GET {path}", body.decode())
        finally:
            sinks.add("monitor serve (stderr)", stop_server(process))

    # The prompt's key was replaced, not dropped: the answer and runs say so.
    assert "[REDACTED]" in answer["answer"]
    leaks = sinks.leaks() + file_leaks(data_dir)
    assert not leaks, "\n".join(leaks)
    assert list((data_dir / "backups").iterdir()), "the backup was made"
