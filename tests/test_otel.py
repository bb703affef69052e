"""OTLP export: real `assistant ask` processes send traces, metrics and logs to a local
OTLP/HTTP receiver that decodes them with the official opentelemetry-proto messages."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import (
    OPENAI_MODEL,
    installed_assistant,
    metrics_window,
    openai_env,
    subprocess_env,
)

pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the [otel] extra is not installed",
)

from tests.helpers.otlp import (
    Blackhole,
    OtlpReceiver,
    SpanView,
    attributes_of,
    refused_url,
)

KEY = "sk-otel-000000000000"
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    yield otlp
    otlp.close()


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer() as server:
        yield server


def ask(
    stub: StubLLMServer, endpoint: str, *words: str, provider: str = "openai", **env: str
) -> subprocess.CompletedProcess[str]:
    """One `assistant ask` exporting to ``endpoint`` (given the time to send it all).

    Through the OpenAI provider unless the test is about the other's attributes:
    what these tests check is the trace around the call (see ``openai_env``).
    """
    variables = {
        **(openai_env(stub.url) if provider == "openai" else {"LLM_BASE_URL": stub.url}),
        "LLM_API_KEY": KEY,
        "LLM_MAX_RETRIES": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # The receiver is a Python thread on a busy test machine: let it answer.
        "MONITOR_OTEL_EXIT_TIMEOUT_MS": "20000",
        **env,
    }
    return subprocess.run(
        [installed_assistant(), "ask", *(words or ("hello",))],
        env=subprocess_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree(spans: list[SpanView]) -> dict[str, list[str]]:
    """Parent span name -> its children's names ("" for the roots)."""
    names = {span.span_id: span.name for span in spans}
    children: dict[str, list[str]] = {}
    for span in spans:
        children.setdefault(names.get(span.parent_span_id, ""), []).append(span.name)
    return {parent: sorted(kids) for parent, kids in children.items()}


def by_name(spans: list[SpanView], name: str) -> list[SpanView]:
    return [span for span in spans if span.name == name]


def runs_of(data_dir: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [installed_assistant(), "monitor", "runs", "--json"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    runs: list[dict[str, Any]] = json.loads(done.stdout)["runs"]
    return runs


def log_lines(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "logs" / "assistant.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_one_ask_is_one_trace_with_the_span_tree_and_genai_attributes(
    receiver: OtlpReceiver, stub: StubLLMServer, data_dir: Path
) -> None:
    done = ask(stub, receiver.url, provider="anthropic", OTEL_SERVICE_NAME="assistant-test")
    assert done.returncode == 0, done.stderr
    spans = receiver.spans()
    assert len({span.trace_id for span in spans}) == 1, "exactly one trace"
    assert tree(spans) == {
        "": ["assistant run"],
        "assistant run": ["stage classify", "stage context", "stage generate", "stage persist"],
        "stage generate": ["chat claude-haiku-4-5"],
    }
    (chat,) = by_name(spans, "chat claude-haiku-4-5")
    assert chat.kind == SPAN_KIND_CLIENT
    assert chat.status_code == 0
    attributes = chat.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == "claude-haiku-4-5"
    assert attributes["gen_ai.response.model"] == "claude-haiku-4-5"
    assert attributes["gen_ai.request.max_tokens"] > 0
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0
    assert attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == stub.port
    assert "gen_ai.response.time_to_first_chunk" in attributes  # streamed by default
    assert "gen_ai.first_chunk" in [name for name, _ in chat.events]
    assert "gen_ai.input.messages" not in attributes, "no content without LOG_CONTENT"
    assert "error.type" not in attributes

    (root,) = by_name(spans, "assistant run")
    assert root.parent_span_id == ""
    assert root.attributes["assistant.status"] == "success"
    assert root.attributes["assistant.classifier.intent.label"]
    assert root.resource["service.name"] == "assistant-test"
    assert root.resource["deployment.environment.name"] == "test"
    assert root.resource["service.instance.id"]

    # Correlation: the run row and the log lines written inside the run.
    (run,) = runs_of(data_dir)
    assert (run["trace_id"], run["span_id"]) == (root.trace_id, root.span_id)
    inside = [line for line in log_lines(data_dir) if line.get("run_id") == run["id"]]
    assert inside
    assert all(line["trace_id"] == root.trace_id for line in inside)
    span_ids = {span.span_id for span in spans}
    assert all(line["span_id"] in span_ids for line in inside)
    shown = subprocess.run(
        [installed_assistant(), "monitor", "runs", "show", run["id"]],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"trace {root.trace_id}" in shown.stdout


def test_a_failed_run_marks_the_spans_that_failed(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    stub.push_faults("500")
    done = ask(stub, receiver.url)
    assert done.returncode != 0
    spans = receiver.spans()
    (chat,) = by_name(spans, f"chat {OPENAI_MODEL}")
    assert chat.status_code == STATUS_ERROR
    assert chat.attributes["error.type"] == "InternalServerError"
    (generate,) = by_name(spans, "stage generate")
    assert generate.status_code == STATUS_ERROR
    assert generate.attributes["error.type"] == "ProviderUnavailable"
    (root,) = by_name(spans, "assistant run")
    assert root.status_code == STATUS_ERROR
    assert root.attributes["error.type"] == "ProviderUnavailable"
    assert root.attributes["assistant.status"] == "failure"
    for name in ("stage context", "stage classify"):
        (ok,) = by_name(spans, name)
        assert ok.status_code == 0
        assert "error.type" not in ok.attributes
    assert not by_name(spans, "stage persist"), "a stage after the failure never ran"


def test_each_attempt_is_a_span_and_a_duration_and_the_retry_an_event(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    stub.push_faults("500")
    done = ask(stub, receiver.url, LLM_MAX_RETRIES="2")
    assert done.returncode == 0, done.stderr
    spans = receiver.spans()
    attempts = by_name(spans, f"chat {OPENAI_MODEL}")
    assert [a.attributes.get("error.type") for a in attempts] == ["InternalServerError", None]
    (generate,) = by_name(spans, "stage generate")
    retries = [attrs for name, attrs in generate.events if name == "gen_ai.retry"]
    assert len(retries) == 1
    assert retries[0]["error.type"] == "InternalServerError"
    # One duration per attempt: the convention times one operation, not the backoff.
    durations = [
        attributes_of(point)
        for metric in receiver.metrics()["gen_ai.client.operation.duration"]
        for point in metric.histogram.data_points
    ]
    assert sorted(str(d.get("error.type")) for d in durations) == [
        "InternalServerError",
        "None",
    ]
    succeeded = next(d for d in durations if "error.type" not in d)
    assert succeeded["gen_ai.response.model"] == OPENAI_MODEL
    assert succeeded["server.address"] == "127.0.0.1"
    assert succeeded["server.port"] == stub.port
    (first_chunk,) = receiver.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert first_chunk.unit == "s"
    assert sum(p.count for p in first_chunk.histogram.data_points) == 1


def test_traceparent_makes_the_run_a_child_of_that_trace(
    receiver: OtlpReceiver, stub: StubLLMServer, data_dir: Path
) -> None:
    parent_trace, parent_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    done = ask(stub, receiver.url, TRACEPARENT=f"00-{parent_trace}-{parent_span}-01")
    assert done.returncode == 0, done.stderr
    spans = receiver.spans()
    assert {span.trace_id for span in spans} == {parent_trace}
    (root,) = by_name(spans, "assistant run")
    assert root.parent_span_id == parent_span
    (run,) = runs_of(data_dir)
    assert run["trace_id"] == parent_trace


def test_an_invalid_traceparent_starts_a_new_trace(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    done = ask(stub, receiver.url, TRACEPARENT="00-" + "0" * 32 + "-b7ad6b7169203331-01")
    assert done.returncode == 0, done.stderr
    (root,) = by_name(receiver.spans(), "assistant run")
    assert root.parent_span_id == ""
    assert root.trace_id != "0" * 32


def test_logs_over_otlp_carry_the_trace_of_their_spans(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    done = ask(
        stub,
        receiver.url,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_RESOURCE_ATTRIBUTES="team=platform,service.name=from-attributes",
    )
    assert done.returncode == 0, done.stderr
    (root,) = by_name(receiver.spans(), "assistant run")
    records = list(receiver.log_records())
    assert records, "log records were exported"
    summary = [
        (resource, record)
        for resource, record in records
        if attributes_of(record).get("event") == "pipeline_summary"
    ]
    assert len(summary) == 1
    resource, record = summary[0]
    assert record.trace_id.hex() == root.trace_id
    assert record.span_id.hex() == root.span_id
    assert record.severity_number == 9
    assert record.severity_text == "INFO"
    assert record.body.string_value.startswith("pipeline success")
    # One resource for all three signals, the standard variables over our defaults.
    for seen in (resource, root.resource, *receiver.metric_resources()):
        assert seen["service.name"] == "from-attributes"
        assert seen["team"] == "platform"
    inside = [r for _, r in records if r.trace_id]
    assert {r.trace_id.hex() for r in inside} == {root.trace_id}


def test_logs_are_not_exported_unless_asked(receiver: OtlpReceiver, stub: StubLLMServer) -> None:
    assert ask(stub, receiver.url).returncode == 0
    assert receiver.spans()
    assert not list(receiver.log_records())


def _point_names(receiver: OtlpReceiver) -> dict[str, Any]:
    return {name: metrics[0] for name, metrics in receiver.metrics().items()}


def test_released_genai_names_by_default_and_our_families_under_otel_names(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    assert ask(stub, receiver.url).returncode == 0
    metrics = _point_names(receiver)
    assert "gen_ai.client.token.usage" in metrics
    assert not [name for name in metrics if name.startswith("gen_ai.client.inference")]
    tokens = [
        attributes_of(point)["gen_ai.token.type"]
        for point in metrics["gen_ai.client.token.usage"].histogram.data_points
    ]
    assert sorted(tokens) == ["input", "output"]
    runs = metrics["assistant.pipeline_runs"]
    assert runs.unit == "{run}"
    assert runs.sum.is_monotonic
    assert metrics["assistant.llm_cost_usd"].unit == "{USD}"
    assert metrics["process.cpu"].unit == "s"
    assert not [name for name in metrics if name.endswith("_total")], "no Prometheus names"
    # Cumulative by default: delta would break Prometheus rate() behind a collector.
    assert runs.sum.aggregation_temporality == 2  # CUMULATIVE
    duration = metrics["gen_ai.client.operation.duration"]
    assert list(duration.histogram.data_points[0].explicit_bounds)[:3] == [0.01, 0.02, 0.04]


def test_opt_in_switches_to_the_newer_genai_names(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    done = ask(stub, receiver.url, OTEL_SEMCONV_STABILITY_OPT_IN="http,gen_ai_latest_experimental")
    assert done.returncode == 0, done.stderr
    metrics = _point_names(receiver)
    assert "gen_ai.client.token.usage" not in metrics
    input_total = metrics["gen_ai.client.inference.usage.input_tokens"]
    assert input_total.unit == "{token}"
    assert input_total.sum.is_monotonic
    assert input_total.sum.data_points[0].as_int > 0
    assert "gen_ai.client.inference.usage.output_tokens" in metrics
    assert "gen_ai.client.inference.operation.input_tokens" in metrics
    assert "gen_ai.client.operation.duration" in metrics


def test_a_variable_the_sdk_cannot_read_does_not_stop_the_answer(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    done = ask(stub, receiver.url, OTEL_METRIC_EXPORT_INTERVAL="60s")
    assert done.returncode == 0, done.stderr
    assert receiver.spans()


def test_temporality_preference_is_honoured(receiver: OtlpReceiver, stub: StubLLMServer) -> None:
    done = ask(stub, receiver.url, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")
    assert done.returncode == 0, done.stderr
    runs = _point_names(receiver)["assistant.pipeline_runs"]
    assert runs.sum.aggregation_temporality == 1  # DELTA


def test_content_only_with_log_content_and_redacted(
    receiver: OtlpReceiver, stub: StubLLMServer
) -> None:
    secret = "sk-ant-api03-" + "x" * 40
    done = ask(stub, receiver.url, f"my key is {secret}", LOG_CONTENT="true")
    assert done.returncode == 0, done.stderr
    (chat,) = by_name(receiver.spans(), f"chat {OPENAI_MODEL}")
    sent = json.loads(chat.attributes["gen_ai.input.messages"])
    assert sent[0]["role"] == "user"
    text = sent[0]["parts"][0]["content"]
    assert text.startswith("my key is")
    assert secret not in text
    answer = json.loads(chat.attributes["gen_ai.output.messages"])
    assert answer[0]["role"] == "assistant"
    assert answer[0]["parts"][0]["content"]
    assert secret not in json.dumps([s.attributes for s in receiver.spans()])


@pytest.mark.parametrize("where", ["refused", "blackholed"])
def test_an_unreachable_collector_does_not_hold_the_process(
    stub: StubLLMServer, where: str, data_dir: Path
) -> None:
    """The exporter's own timeout is 10 s; the exit waits 50 ms at most for it.

    Not a speed test (benchmarks/bench_otel.py measures the cost): the exporter's own
    timeout is a minute here, so an exit that waited on it would take a minute; the
    bound is far above 50 ms and what an ask takes on a busy machine, and far below.
    """
    blackhole = Blackhole() if where == "blackholed" else None
    endpoint = blackhole.url if blackhole else refused_url()
    try:
        started = time.monotonic()
        done = ask(
            stub,
            endpoint,
            OTEL_LOGS_EXPORTER="otlp",
            MONITOR_OTEL_EXIT_TIMEOUT_MS="50",
            # A minute at least: SDK 1.4x reads seconds, the spec says milliseconds.
            OTEL_EXPORTER_OTLP_TIMEOUT="60000",
        )
        elapsed = time.monotonic() - started
    finally:
        if blackhole:
            blackhole.close()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < 30, f"ask took {elapsed:.1f} s: it waited on the collector"
    dropped = metrics_window(data_dir).total(
        "assistant_metrics_errors_total", operation="otel_exit"
    )
    assert dropped == 1, "a dropped export is counted where an operator looks"


def test_no_opentelemetry_sdk_is_imported_without_the_variables(
    stub: StubLLMServer,
) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "assistant", "ask", "hello"],
        env=subprocess_env(**openai_env(stub.url), LLM_API_KEY=KEY),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "assistant_monitoring.tracing" in done.stderr
    # An SDK may import the OpenTelemetry *API* itself (anthropic's does: no-op
    # without a global provider); ours are the SDK and the exporter, 200+ ms.
    assert "opentelemetry.sdk" not in done.stderr
    assert "opentelemetry.exporter" not in done.stderr
    assert "assistant_monitoring.otel." not in done.stderr  # the package root is light


def test_sigterm_mid_answer_is_interrupted_in_the_trace_too(
    receiver: OtlpReceiver, stub: StubLLMServer, data_dir: Path
) -> None:
    """One story everywhere: the spans say interrupted, none says ERROR, and the
    trace still leaves the process on its way out."""
    stub.plan.stream_delay = 0.2
    process = subprocess.Popen(
        [installed_assistant(), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(
            **openai_env(stub.url),
            LLM_API_KEY=KEY,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            MONITOR_OTEL_EXIT_TIMEOUT_MS="20000",
        ),
    )
    assert process.stdin is not None
    process.stdin.write("tell me a long story\n")
    process.stdin.flush()
    log = data_dir / "logs" / "assistant.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and log.read_text().count('"event":"classification"') >= 2:
            break
        time.sleep(0.02)
    time.sleep(0.6)  # the answer is streaming
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    spans = receiver.spans()
    assert spans, "the trace was exported at exit"
    assert all(span.status_code != STATUS_ERROR for span in spans)
    (root,) = by_name(spans, "assistant run")
    assert root.attributes["assistant.status"] == "interrupted"
    (chat,) = by_name(spans, f"chat {OPENAI_MODEL}")
    assert "interrupted" in [name for name, _ in chat.events]
    assert "error.type" not in chat.attributes
    durations = receiver.metrics().get("gen_ai.client.operation.duration", [])
    assert not [p for m in durations for p in m.histogram.data_points], "no outcome to time"


def rotel_agent() -> str:
    """The rotel collector's binary (the `rotel` wheel, a dev dependency on Linux x86-64)."""
    from tests.conftest import REQUIRE_TOOLS

    try:
        import rotel
    except ImportError:
        message = "rotel is not installed (pip install -e '.[dev]' on Linux x86-64)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return str(Path(rotel.__file__).parent / "rotel-agent")


def free_port() -> int:
    return int(refused_url().rsplit(":", 1)[1])


def test_through_a_real_collector(
    receiver: OtlpReceiver, stub: StubLLMServer, tmp_path: Path
) -> None:
    """assistant -> rotel (a real OpenTelemetry collector) -> our receiver: the
    collector accepts what we send, and what comes out is still one whole trace."""
    http_port, grpc_port = free_port(), free_port()
    output = tmp_path / "rotel.log"
    sink = output.open("w")
    collector = subprocess.Popen(
        [
            rotel_agent(),
            "start",
            f"--otlp-http-endpoint=127.0.0.1:{http_port}",
            f"--otlp-grpc-endpoint=127.0.0.1:{grpc_port}",
            "--exporter=otlp",
            f"--otlp-exporter-endpoint={receiver.url}",
            "--otlp-exporter-protocol=http",
            "--batch-timeout=100ms",
        ],
        stdout=sink,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if collector.poll() is not None:
                raise AssertionError(f"rotel exited: {output.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", http_port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        done = ask(stub, f"http://127.0.0.1:{http_port}", OTEL_LOGS_EXPORTER="otlp")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            len(receiver.spans()) >= 6 and list(receiver.log_records())
        ):
            time.sleep(0.1)
    finally:
        collector.terminate()
        collector.wait(timeout=10)
        sink.close()
    spans = receiver.spans()
    assert len({span.trace_id for span in spans}) == 1
    assert tree(spans)["stage generate"] == [f"chat {OPENAI_MODEL}"]
    (root,) = by_name(spans, "assistant run")
    traced = [r for _, r in receiver.log_records() if r.trace_id]
    assert traced
    assert {r.trace_id.hex() for r in traced} == {root.trace_id}
