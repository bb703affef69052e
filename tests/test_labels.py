"""No user text ever becomes a metric label: not from argv, prompts, options or typos.

`assistant ask "hello there my friend"` once gave
`assistant_errors_total{context="cli:ask hello there my friend"}`, and a key typed
into a prompt was stored in monitoring.db and served at /metrics. Label values now
come from closed sets or names the code defines, and the registry itself records a
value that breaks its label's rule as `__invalid__`.
"""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.cli import app
from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.families import declare_families
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.labels import (
    CODE_NAME,
    ERROR_CONTEXT,
    INVALID_VALUE,
    MODEL,
    command_context,
)
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import run_cli

ROOT = __import__("typer").main.get_command(app)


def command_paths(command: object, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every context command_context may return: `cli` and each command's path."""
    paths = {"cli:" + ".".join(prefix) if prefix else "cli"}
    for name, sub in (getattr(command, "commands", None) or {}).items():
        paths |= command_paths(sub, (*prefix, name))
    return paths


ALL_PATHS = command_paths(ROOT)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ask", "hello there my friend"], "cli:ask"),
        (["ask", "sk-ant-api03-secret", "--json"], "cli:ask"),
        (["-e", "production", "monitor", "metrics", "--period", "1h"], "cli:monitor.metrics"),
        (["--profile=staging", "monitor", "health", "--json"], "cli:monitor.health"),
        (["monitor", "runs", "show", "run_123"], "cli:monitor.runs.show"),
        (["--debug", "db", "status"], "cli:db.status"),
        (["-e", "monitor", "ask", "x"], "cli:ask"),  # "monitor" is the value of -e
        (["no-such-command", "monitor"], "cli"),
        ([], "cli"),
    ],
)
def test_command_context_is_the_command_path(args: list[str], expected: str) -> None:
    assert command_context(ROOT, args) == expected


words = st.one_of(
    st.sampled_from(
        ["ask", "chat", "monitor", "metrics", "health", "runs", "show", "db", "-e", "--debug"]
    ),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(words, max_size=8))
def test_command_context_only_ever_names_commands(args: list[str]) -> None:
    result = command_context(ROOT, args)
    assert result in ALL_PATHS
    assert ERROR_CONTEXT(result)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=120))
def test_every_label_of_every_family_follows_its_rule(value: str) -> None:
    inst = Instrumentation(MetricsRegistry())
    inst.error(ValueError(), context=value)
    inst.health(value, "healthy")
    with inst.stage(value), inst.classifier(value):
        pass
    with inst.llm_call(value, value):
        pass
    with inst.db_query(value):
        pass
    deltas = inst.registry.take_deltas()
    rules = {
        "context": ERROR_CONTEXT,
        "check": CODE_NAME,
        "stage": CODE_NAME,
        "classifier": CODE_NAME,
        "model": MODEL,
        "provider": CODE_NAME,
    }
    for delta in deltas:
        for name, label in delta.labels:
            rule = rules.get(name)
            if rule is not None:
                assert label == INVALID_VALUE or rule(label), (delta.family, name, label)
            if label == value and value and value != INVALID_VALUE:  # the marker itself
                assert rule is None or rule(value)
    for delta in deltas:
        for _, label in delta.labels:
            assert not any(c in label for c in ' "\\\n\r\t{}='), (delta.family, label)


def test_a_broken_rule_is_counted_not_hidden() -> None:
    registry = MetricsRegistry()
    metrics = declare_families(registry)
    metrics.errors.labels("ValueError", "cli:ask hello there").inc()
    metrics.errors.labels("ValueError", "cli:ask").inc()
    by_labels = {
        delta.labels: delta.value
        for delta in registry.take_deltas()
        if delta.family == "assistant_errors_total"
    }
    assert by_labels == {
        (("type", "ValueError"), ("context", INVALID_VALUE)): 1.0,
        (("type", "ValueError"), ("context", "cli:ask")): 1.0,
    }


# -- every command, end to end -----------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


def test_no_argument_of_any_command_reaches_the_store_or_the_exposition(
    data_dir: Path, stub: StubLLMServer
) -> None:
    marker = f"zq{uuid.uuid4().hex[:10]}"
    typed_key = f"sk-ant-api03-{marker}key0000000000000000"
    keyed = {"LLM_BASE_URL": stub.url, "LLM_API_KEY": "sk-test-0000000000000000"}

    def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, stdin=stdin, **env)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        return result

    def m(n: int) -> str:
        return f"{marker}{n} words {marker}"

    run("ask", f"{m(1)} and my key {typed_key}")  # no key: MissingApiKey, counted
    run("ask", m(2), **keyed)
    run("ask", "--model", f"{marker}3", m(3), **keyed)  # unknown model: 404
    run("ask", "--conversation", f"c_{marker}4", m(4), **keyed)
    run("chat", stdin=f"{m(5)}\n{typed_key}\n", **keyed)
    run("chat", "--model", f"{marker}6", stdin=f"{m(6)}\n", **keyed)
    run("monitor", "metrics", "--name", m(7))
    run("monitor", "metrics", "--period", m(8))
    run("monitor", "metrics", "--group", m(9))
    run("monitor", "logs", "--grep", m(10), "--conversation", m(11))
    run("monitor", "logs", "--since", m(12))
    run("monitor", "logs", "--level", m(13))
    run("monitor", "runs", "--status", m(14))
    run("monitor", "runs", "show", m(15))
    run("monitor", "health", "--check", m(16))
    run("monitor", "health", "--fail-on", m(17))
    run("monitor", "breakers", "--reset", m(18))
    run("monitor", "alerts", "--json")
    run("monitor", "dashboard", "--once", "--period", m(19))
    run("config", "check", "--profile", m(20))
    run("db", "status")
    run(m(21))
    run("-e", m(22), "ask", m(23))

    store = data_dir / "monitoring.db"
    assert store.exists()
    with sqlite3.connect(store) as conn:
        stored = [
            *(row[0] for row in conn.execute("SELECT labels FROM series")),
            *(row[0] for row in conn.execute("SELECT name FROM families")),
        ]
        contexts = {
            row[0]
            for row in conn.execute(
                "SELECT labels FROM series WHERE family = 'assistant_errors_total'"
            )
        }
    conn.close()
    assert stored, "the commands recorded metrics"
    assert any('"cli:ask"' in labels for labels in contexts), contexts
    for text in stored:
        assert marker not in text.lower(), text
    for fmt in ("prometheus", "openmetrics"):
        exposition = run("monitor", "metrics", "--format", fmt).stdout
        assert "assistant_errors_total" in exposition
        assert marker not in exposition.lower()
    assert 'model="unverified"' in run("monitor", "metrics", "--format", "prometheus").stdout
